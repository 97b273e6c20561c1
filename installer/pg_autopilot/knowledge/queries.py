"""Reading knowledge artifacts for the CLI: ``autopilot knowledge list / show`` and
``autopilot search --knowledge``."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..embeddings import Embedder
from ..errors import InvalidInput
from .embed import pending


def list_artifacts(
    conn: psycopg.Connection, artifact_type: str | None = None, source: str | None = None
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT a.artifact_type, a.name, a.version, a.source, a.source_path, a.embedding_model,"
            " a.usage_count, a.updated_at"
            " FROM autopilot.knowledge_artifacts AS a"
            " WHERE (%(type)s::text IS NULL OR a.artifact_type = %(type)s)"
            " AND (%(source)s::text IS NULL OR a.source = %(source)s)"
            " ORDER BY a.artifact_type, a.name",
            {"type": artifact_type, "source": source},
        ).fetchall()


def show_artifact(
    conn: psycopg.Connection, name: str, artifact_type: str | None = None, version: int | None = None
) -> dict[str, Any]:
    """One artifact with the list of its versions; with ``version``, that version's content. NAME may be
    ``type/name`` when the type is not given and the name alone is ambiguous."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT a.id, a.artifact_type, a.name, a.version, a.source, a.source_path, a.content_hash,"
            " a.content, a.usage_count, a.last_used_at, a.created_at, a.updated_at, a.embedding_model,"
            " a.embedding IS NOT NULL AS embedded"
            " FROM autopilot.knowledge_artifacts AS a"
            " WHERE (a.name = %(name)s AND (%(type)s::text IS NULL OR a.artifact_type = %(type)s))"
            " OR (%(type)s::text IS NULL AND a.artifact_type || '/' || a.name = %(name)s)"
            " ORDER BY a.artifact_type",
            {"name": name, "type": artifact_type},
        ).fetchall()
        if not rows:
            raise InvalidInput(
                f"no knowledge artifact named {name!r}"
                + (f" of type {artifact_type!r}" if artifact_type else ""),
                hint="autopilot knowledge list shows them",
            )
        if len(rows) > 1:
            types = ", ".join(r["artifact_type"] for r in rows)
            raise InvalidInput(
                f"{len(rows)} knowledge artifacts are named {name!r} (types {types})",
                hint=f"Name the type: --type TYPE, or TYPE/{name}",
            )
        artifact = rows[0]
        artifact["versions"] = cur.execute(
            "SELECT v.version, v.content_hash, v.source, v.source_path, v.valid_from, v.valid_until"
            " FROM autopilot.knowledge_artifact_versions AS v WHERE v.artifact_id = %s ORDER BY v.version",
            [artifact["id"]],
        ).fetchall()
        if version is not None and version != artifact["version"]:
            old = cur.execute(
                "SELECT v.content, v.content_hash, v.source, v.source_path"
                " FROM autopilot.knowledge_artifact_versions AS v"
                " WHERE v.artifact_id = %s AND v.version = %s",
                [artifact["id"], version],
            ).fetchone()
            if old is None:
                known = [str(v["version"]) for v in artifact["versions"]] + [str(artifact["version"])]
                raise InvalidInput(
                    f"{artifact['artifact_type']}/{artifact['name']} has no version {version}",
                    hint=f"its versions: {', '.join(known)}",
                )
            artifact.update(old, version=version, current_version=artifact["version"])
    return artifact


def search(
    conn: psycopg.Connection, embedder: Embedder, text: str, limit: int, artifact_type: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Hybrid search (autopilot.search_knowledge) with the query embedded by ``embedder``; and how many
    artifacts have no embedding of its model yet (template-embed has not run since they changed)."""
    vector = embedder.embed_query(text)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT s.* FROM autopilot.search_knowledge(%s::real[], %s, %s, %s, %s) AS s",
            [vector, text, limit, embedder.model_id, artifact_type],
        ).fetchall()
    return rows, pending(conn, embedder.model_id)
