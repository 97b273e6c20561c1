"""The worker of registry-sync: the analyzers over every enabled codebase, a snapshot of each, and
the analysis_results rows that pattern-learning folds (the domain code is pg_autopilot.analysis)."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, log, worker


@worker("registry_sync", timeout=6 * 3600)
def registry_sync(args: dict[str, Any], context: JobContext) -> str:
    """registry-sync (daily 04:00): ``args.codebase`` names one codebase, else every enabled one.
    Each codebase's snapshot is recorded whatever its analyzers' outcomes; the job fails, after every
    codebase is done, when an analyzer failed or timed out or a codebase could not be listed, with
    the whole summary as its message. Cancelled, it stops the running analyzers and records nothing
    more."""
    from .. import codebases
    from ..analysis.sync import sync
    from ..ingest.files import CodebaseError

    with context.connect() as conn:
        names = [args["codebase"]] if args.get("codebase") else codebases.enabled_names(conn)
    lines, failed = [], False
    for name in names:
        try:
            result = sync(
                context.connect,
                name,
                progress=lambda final=False, name=name, **fields: context.progress(
                    final, codebase=name, **fields
                ),
                cancelled=context.cancelled,
            )
        except CodebaseError as exc:
            log.error("codebase not analyzed", extra={"fields": {"codebase": name, "error": str(exc)}})
            lines.append(f"{name}: {exc}")
            failed = True
            continue
        for run in result.failures:
            log.error(
                "analyzer failed",
                extra={"fields": {"codebase": name, "analyzer": run.analyzer, "error": run.message}},
            )
        failed = failed or bool(result.failures)
        lines.append(result.line())
    summary = " | ".join(lines) if lines else "no enabled codebase (autopilot codebase add NAME PATH)"
    if failed:
        raise RuntimeError(summary)
    return summary
