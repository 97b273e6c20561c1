"""The worker of graph-populate: the code graph brought up to date with what code-ingest changed
(autopilot.populate_code_graph, set-based in SQL), then PageRank recomputed over it."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, worker


@worker("graph_populate", timeout=3600)
def graph_populate(args: dict[str, Any], context: JobContext) -> str:
    """graph-populate (runner start, Sundays 07:00, and after every code-ingest). Each codebase waits
    for an ingest of it that is running (its lock), so the graph never takes half a run. PageRank
    runs when the graph changed, or when nodes have no rank yet (an earlier PageRank failed); a
    PageRank run that fails fails the job, so the retry runs it again."""
    from ..ingest.store import ingest_lock_key
    from ..run_now import run_now

    parts = []
    with context.connect() as conn:
        names = [args["codebase"]] if args.get("codebase") else [
            name for (name,) in conn.execute("SELECT c.name FROM autopilot.codebases AS c ORDER BY c.name")
        ]  # fmt: skip
        changed = 0
        for name in names:
            key = ingest_lock_key(conn, name)
            conn.execute("SELECT pg_catalog.pg_advisory_lock(%s)", [key])
            try:
                summary = conn.execute("SELECT autopilot.populate_code_graph(%s)", [name]).fetchone()[0]
            finally:
                conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", [key])
            changed += summary.get("changed_files", 0)
            context.progress(**summary)
            parts.append(_line(summary))
        if changed or _unranked(conn, names):
            run = run_now(conn, "pagerank")
            parts.append(f"pagerank: {run['status']} ({run['message']})")
            # skipped: a run of it is in progress (pg_cron's), which ranks what is there when it started;
            # nodes it missed are still unranked at the next graph-populate
            if run["status"] not in ("succeeded", "skipped"):
                raise RuntimeError(" | ".join(parts))
    return " | ".join(parts) if parts else "no codebase"


def _unranked(conn: Any, names: list[str]) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT FROM autopilot.graph_nodes AS n"
        " WHERE n.codebase = ANY(%s) AND n.pagerank IS NULL)",
        [names],
    ).fetchone()[0]


def _line(summary: dict[str, Any]) -> str:
    name = summary["codebase"]
    if not summary.get("changed_files"):
        return f"{name}: graph up to date"
    return (
        f"{name}: {summary['changed_files']} files changed, {summary['relinked_files']} relinked;"
        f" {summary['nodes']} nodes ({summary['nodes_written']} written, {summary['nodes_deleted']} deleted),"
        f" {summary['edges']} edges ({summary['edges_written']} written, {summary['edges_deleted']} deleted)"
    )
