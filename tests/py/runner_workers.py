"""Workers for the runner's tests (loaded with `autopilot runner start --worker-module runner_workers`)."""

from __future__ import annotations

import time

import psycopg

from pg_autopilot.workers import JobContext, worker


@worker("noop", timeout=60)
def noop(args: dict, context: JobContext) -> None:
    return None


@worker("pause", timeout=60)
def pause(args: dict, context: JobContext) -> None:
    """Sleeps args.seconds and returns nothing (so its completion is complete_many's first statement)."""
    context.cancelled.wait(float(args.get("seconds", 0.5)))


@worker("sleep", timeout=60)
def sleep(args: dict, context: JobContext) -> str:
    """Sleeps args.seconds (stopping early when the runner says so), then records its run in the
    database when args.record: the table public.runner_log (job_id, node, started, finished)."""
    started = time.time()
    context.cancelled.wait(float(args.get("seconds", 0.1)))
    if args.get("record"):
        with context.connect() as conn:
            conn.execute(
                "INSERT INTO public.runner_log (job_id, node, started, finished)"
                " VALUES (%s, %s, to_timestamp(%s), clock_timestamp())",
                [context.job_id, context.node, started],
            )
    return "slept"


@worker("progress", timeout=60)
def progress(args: dict, context: JobContext) -> str:
    """Reports ``done`` of ``of`` steps, one step every args.step seconds, then waits args.hold
    seconds (or until told to stop) with its last report standing."""
    total = int(args.get("of", 5))
    for done in range(1, total + 1):
        context.progress(final=done == total, done=done, of=total, unit="steps")
        if context.cancelled.wait(float(args.get("step", 0.01))):
            return "stopped"
    context.cancelled.wait(float(args.get("hold", 0)))
    return f"{total} steps"


@worker("flaky", timeout=60)
def flaky(args: dict, context: JobContext) -> str:
    """Fails until its attempt reaches args.succeed_on."""
    if context.attempt < int(args.get("succeed_on", 2)):
        raise RuntimeError(f"flaky failure on attempt {context.attempt}")
    return "finally"


@worker("hang", timeout=0.5)
def hang(args: dict, context: JobContext) -> None:
    """Overruns its 0.5 s timeout."""
    time.sleep(float(args.get("seconds", 3)))


@worker("fail_after", timeout=60)
def fail_after(args: dict, context: JobContext) -> None:
    """Waits args.seconds (stopping early when the runner says so), then fails."""
    context.cancelled.wait(float(args.get("seconds", 0.1)))
    raise RuntimeError("failing on purpose")


@worker("stubborn", timeout=60)
def stubborn(args: dict, context: JobContext) -> str:
    """Sleeps args.seconds whatever the runner says (a worker that never looks at context.cancelled),
    then records its run in public.runner_log when args.record."""
    started = time.time()
    time.sleep(float(args.get("seconds", 1)))
    if args.get("record"):
        with psycopg.connect(context.dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO public.runner_log (job_id, node, started, finished)"
                " VALUES (%s, %s, to_timestamp(%s), clock_timestamp())",
                [context.job_id, f"{context.node} attempt {context.attempt}", started],
            )
    return "done at last"


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("this result cannot be printed")


@worker("unprintable", timeout=60)
def unprintable(args: dict, context: JobContext) -> Unprintable:
    """Succeeds with a result whose str() raises."""
    return Unprintable()
