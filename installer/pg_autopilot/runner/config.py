"""The runner's settings (``autopilot runner start`` fills them from its options)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field


@dataclass
class RunnerConfig:
    dsn: str | None = None
    queues: tuple[str, ...] = ("default", "backups")
    concurrency: int = 10
    node: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    poll_interval: float = 1.0
    heartbeat_interval: float = 5.0
    grace: float = 30.0
    enqueue_startup_jobs: bool = True
    # jobs claimed ahead of the free slots, so that one round trip feeds many jobs (given back with
    # autopilot.release when the runner stops): prefetch until a job has finished, then as many as
    # keep the slots busy for about 50 ms, up to max_prefetch (none ahead of slow jobs). The 50 ms
    # is the real bound; max_prefetch caps it for jobs of microseconds, whose next claim must be
    # under way while the completer records the batch before (with 200, a backlog of 100,000 no-op
    # jobs drained 25-35% slower; DEVELOPERS.md)
    prefetch: int = 10
    max_prefetch: int = 1000
    # completions are recorded by a thread of their own, in batches of at most this many
    complete_batch: int = 500
