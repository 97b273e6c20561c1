"""The worker of knowledge-migration: the JSON templates of knowledge.templates_directory into the knowledge
artifacts (the domain code is pg_autopilot.knowledge.migration)."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, log, worker


@worker("knowledge_migration", timeout=3600)
def knowledge_migration(args: dict[str, Any], context: JobContext) -> str:
    """knowledge-migration (runner start): loads the templates directory in one transaction. A file that
    cannot be loaded is named in the summary and the log, and skipped; the others load. ``args.directory``
    overrides the setting."""
    from ..knowledge.migration import migrate

    with context.connect(autocommit=False) as conn:
        result = migrate(
            conn,
            args.get("directory"),
            progress=lambda final=False, **fields: context.progress(final, **fields),
            cancelled=context.cancelled,
        )
    for problem in result.applied.problems if result.applied else ():
        log.warning(
            "template not loaded",
            extra={"fields": {"job_id": context.job_id, "file": problem.path, "error": problem.reason}},
        )
    return result.line()
