"""The listener thread: ``LISTEN autopilot_jobs`` on a connection of its own, waking the main loop."""

from __future__ import annotations

import logging
import threading

import psycopg

from ..db import APPLICATION_NAME, conninfo
from ..queue import backoff
from .logs import event, one_line


class Listener:
    """Wakes the main loop when a job is enqueued in one of ``queues``, so an idle runner starts it at
    once (polling is the fallback). Never the connection claims use. While the database cannot be
    reached, it tries again after 1, 2, 4 ... at most 30 s (polling goes on)."""

    def __init__(self, dsn: str, queues: tuple[str, ...], stopping: threading.Event, wake: threading.Event):
        self._dsn = dsn
        self._queues = queues
        self._stopping = stopping
        self._wake = wake
        self._thread = threading.Thread(target=self._loop, name="autopilot-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    conninfo(self._dsn, application_name=f"{APPLICATION_NAME} runner"),
                    autocommit=True,
                    connect_timeout=10,
                ) as conn:
                    conn.execute("LISTEN autopilot_jobs")
                    # what was enqueued before this LISTEN (since the runner's first claim, or while
                    # the connection was lost) sent no NOTIFY we heard: claim once now, not at the
                    # next poll (up to poll_interval later)
                    self._wake.set()
                    failures = 0
                    self._wait(conn)
            except psycopg.Error as exc:
                failures += 1
                delay = backoff(failures, 30.0)
                event(
                    logging.WARNING,
                    "listener lost its connection; polling meanwhile",
                    error=one_line(exc),
                    retry_in_s=delay,
                )
                self._stopping.wait(delay)

    def _wait(self, conn: psycopg.Connection) -> None:
        while not self._stopping.is_set():
            for notify in conn.notifies(timeout=1.0):
                if notify.payload in self._queues:
                    self._wake.set()
