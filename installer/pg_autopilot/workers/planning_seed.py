"""The worker of planning-seed: the plan file's items become tasks, each once (the domain code is
pg_autopilot.planning; the checks and the writing are autopilot.seed_plan's)."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, worker


@worker("planning_seed", timeout=600)
def planning_seed(args: dict[str, Any], context: JobContext) -> str:
    """planning-seed (runner start): the plan the setting planning.plan_file names. Safe to run any
    number of times: it adds only the items not seeded yet. An invalid plan fails the job with the
    item named, and nothing is written."""
    from .. import planning

    with context.connect() as conn:
        return planning.seed(conn).line()
