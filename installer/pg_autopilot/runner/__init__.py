"""The runner: drains autopilot.jobs with ``concurrency`` slot threads. It only dispatches; every
SQL call goes through :class:`~pg_autopilot.queue.QueueClient`, every attempt's state lives in the
:class:`~.ledger.Ledger`.

The threads, and what each one owns::

    listener --- LISTEN autopilot_jobs (its own connection) ---------------+
                                                                           v
    main loop (loop.Runner) <-------------------------------------------- wake <-- slots, completer
      |-- claim() -----> ledger: pending --> slot threads (N) --> worker(args, context)
      |                                           |                     |
      |                                           | success             | failure, timeout
      |                                           v                     v
      |                     completer (its inbox) --> complete_many()   ledger: failing
      |                       (its own thread and connection, beside the claims)  |
      |<-- fail() --------------------------------------------------------+
      |-- release()   (claimed, never started: stopping, or every slot stuck)
    heartbeat --> ledger.held() --> heartbeat() --> ledger.lose(gone)

* **loop.Runner** (the thread that calls run()): the pool, the claiming rounds (the queues' shares,
  the next turn), recording failures and releases, timeouts, and the shutdown drain.
* **ledger.Ledger**: every attempt the runner holds, each in one place (pending, running, failing,
  completing, releasing), the slot counts and the stats, under one lock that no caller holds.
* **slots.Slots**: N threads; each takes the next claimed job, runs its worker, and hands the
  outcome on (successes to the completer, failures to the ledger).
* **completer.Completer**: its inbox of successes, recorded at once by its thread in batches
  (``complete_many``: what finished while the batch before was being recorded), on a connection of
  its own, so that the server records one batch while it hands out the next claim.
* **heartbeat.Heartbeat**: every ``heartbeat_interval``, ``heartbeat`` for what the ledger holds; an
  attempt the database no longer gives this node is taken from its worker.
* **listener.Listener**: ``NOTIFY autopilot_jobs`` wakes the main loop, so an idle runner starts a
  new job at once; polling every ``poll_interval`` seconds is the fallback (and finds jobs
  scheduled for later).

Claiming: due jobs (``autopilot.claim``, SKIP LOCKED) for the free slot threads plus a few ahead
(more when jobs are quick, none when they are slow), and again when half of them have been taken or
a slot is left with nothing; every queue gets a share of each round, the first share going to each
queue in turn, so that a backlog in one queue never starves another. Jobs that finished but whose
outcome is not recorded yet count as held: a runner never holds more than its slots and its
prefetch. An outcome is kept until the database has it: one that cannot be recorded (the database
restarting, a failover) is tried again. A worker past its timeout cannot be killed: its attempt
fails, and its slot thread counts as busy until the worker returns; when every slot thread is stuck
that way, the runner claims nothing and gives back what it had claimed ahead.

Stopping (SIGTERM, SIGINT, :meth:`Runner.stop`): no more claims; jobs claimed but not started are
given back (``release``); running jobs get ``grace`` seconds to finish and are recorded; what still
runs after that is left executing, and rescue-orphaned-jobs takes it back once its heartbeats have
stopped. A job is never marked done unless it finished.
"""

from __future__ import annotations

from .. import sqlfiles
from ..workers import CACHES
from .config import RunnerConfig
from .logs import configure_logging, event
from .loop import Runner

CACHES.append(sqlfiles.bundle)

__all__ = ["Runner", "RunnerConfig", "configure_logging", "event"]
