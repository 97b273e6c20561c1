"""The workers of bench/queue_throughput.py, loaded by the runner with ``--worker-module queue_workers``
(bench/queue_throughput.py puts installer/ and bench/ on the runner's ``PYTHONPATH``).

``noop`` does nothing. A job whose args carry ``probe`` (the latency test) first appends
``"<probe> <time.time()>"`` to the file named by ``$AUTOPILOT_BENCH_STARTS``, so that the bench can
compare the moment the worker started with the moment the job was enqueued (same machine, same clock).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from pg_autopilot.workers import JobContext, worker

_STARTS = os.environ.get("AUTOPILOT_BENCH_STARTS")
_lock = threading.Lock()


@worker("noop")
def noop(args: dict[str, Any], context: JobContext) -> None:
    probe = args.get("probe") if args else None
    if probe is not None and _STARTS:
        started = time.time()
        with _lock, open(_STARTS, "a") as f:
            f.write(f"{probe} {started!r}\n")
    return None
