"""Workers for the runner's tests (loaded with `autopilot runner start --worker-module runner_workers`)."""

from __future__ import annotations

import time

import psycopg

from pg_autopilot.workers import JobContext, worker


@worker("noop", timeout=60)
def noop(args: dict, context: JobContext) -> None:
    return None


@worker("sleep", timeout=60)
def sleep(args: dict, context: JobContext) -> str:
    """Sleeps args.seconds (stopping early when the runner says so), then records its run in the
    database when args.record: the table public.runner_log (job_id, node, started, finished)."""
    started = time.time()
    context.cancelled.wait(float(args.get("seconds", 0.1)))
    if args.get("record"):
        with psycopg.connect(context.dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO public.runner_log (job_id, node, started, finished)"
                " VALUES (%s, %s, to_timestamp(%s), clock_timestamp())",
                [context.job_id, context.node, started],
            )
    return "slept"


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
