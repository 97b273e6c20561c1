"""The worker of templates-data-load: the templates_data directory kept in step with autopilot.template_data
(the domain code is pg_autopilot.knowledge.templates_data)."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, log, worker


@worker("templates_data_load", timeout=3600)
def templates_data_load(args: dict[str, Any], context: JobContext) -> str:
    """templates-data-load (runner start): new and changed files loaded, removed files marked removed, in
    one transaction. A file that cannot be loaded is named in the summary and the log, and its row left as
    it was. ``args.directory`` overrides the setting."""
    from ..knowledge.templates_data import load

    with context.connect(autocommit=False) as conn:
        result = load(
            conn,
            args.get("directory"),
            progress=lambda final=False, **fields: context.progress(final, **fields),
            cancelled=context.cancelled,
        )
    for problem in result.problems:
        log.warning(
            "templates_data file not loaded",
            extra={"fields": {"job_id": context.job_id, "file": problem.path, "error": problem.reason}},
        )
    return result.line()
