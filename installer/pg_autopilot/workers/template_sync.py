"""The worker of template-sync: the templates of a git repository's branch, change by change, into the
knowledge artifacts (the domain code is pg_autopilot.knowledge.sync and .git)."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, log, worker


@worker("template_sync", timeout=3600)
def template_sync(args: dict[str, Any], context: JobContext) -> str:
    """template-sync (daily 02:00): fetches template_sync.branch of template_sync.repository, applies the
    files changed since the commit last synced (deletions included) and records the new one, in one
    transaction. A failed fetch (the repository unreachable, authentication refused, the branch
    force-pushed) fails the job with nothing changed. ``args.full``: apply the whole tree, accepting a
    rewritten branch."""
    from ..knowledge.sync import sync

    with context.connect(autocommit=False) as conn:
        result = sync(
            conn,
            full=bool(args.get("full")),
            progress=lambda final=False, **fields: context.progress(final, **fields),
            cancelled=context.cancelled,
            deadline=context.deadline,
        )
    for problem in result.applied.problems if result.applied else ():
        log.warning(
            "template not synced",
            extra={"fields": {"job_id": context.job_id, "file": problem.path, "error": problem.reason}},
        )
    return result.line()
