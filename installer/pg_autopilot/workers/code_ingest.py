"""The worker of code-ingest: every enabled codebase parsed, chunked and embedded (the domain code
is pg_autopilot.ingest), then graph-populate enqueued to take the changes into the code graph."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, log, worker


@worker("code_ingest", timeout=6 * 3600)
def code_ingest(args: dict[str, Any], context: JobContext) -> str:
    """code-ingest (runner start, Sundays 06:00): ``args.codebase`` names one codebase, else every
    enabled one. A codebase that fails (its root gone) fails the job after the others are done, with
    its message; what the others wrote stays. The embedding model is loaded only once a chunk needs
    a vector: a run over unchanged trees, or over none, never loads it."""
    from .. import codebases

    with context.connect() as conn:
        names = [args["codebase"]] if args.get("codebase") else codebases.enabled_names(conn)
        embedder = codebases.configured_embedder(conn) if names else None
    summaries, failures = ingest_codebases(context, names, embedder)
    lines = [summary.line() for summary in summaries]
    with context.connect() as conn:  # graph-populate takes what changed (it waits for running ingests)
        conn.execute("SELECT autopilot._enqueue_catalog_job('graph-populate')")
    if failures:
        raise RuntimeError("; ".join(failures + lines))
    return " | ".join(lines) if lines else "no enabled codebase (autopilot codebase add NAME PATH)"


def ingest_codebases(context: JobContext, names: list[str], embedder: Any) -> tuple[list[Any], list[str]]:
    """Ingests each codebase of ``names`` in turn, its progress in the job's meta: the summaries of
    those ingested, and "name: error" for those that failed (their root gone), logged; one failing
    does not stop the others. code-ingest's loop, which rag-setup runs too."""
    from .. import codebases
    from ..ingest.files import CodebaseError

    summaries, failures = [], []
    for name in names:
        try:
            summaries.append(
                codebases.ingest(
                    lambda: context.connect(autocommit=False),
                    name,
                    progress=lambda final=False, name=name, **fields: context.progress(
                        final, codebase=name, **fields
                    ),
                    cancelled=context.cancelled,
                    embedder=embedder,
                )
            )
        except CodebaseError as exc:
            log.error("codebase not ingested", extra={"fields": {"codebase": name, "error": str(exc)}})
            failures.append(f"{name}: {exc}")
    return summaries, failures
