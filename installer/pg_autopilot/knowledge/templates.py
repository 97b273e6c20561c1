"""Template files into knowledge artifacts: what knowledge-migration (a directory) and template-sync (a git
repository) share.

A template is a JSON file matching template.schema.json; its ``type`` and ``name`` identify the
artifact (``autopilot.knowledge_artifacts``: ``artifact_type``, ``name``), and the whole document is
the artifact's content. A loader (``source``: the job's name) changes and deletes only the artifacts
it wrote, each in the caller's transaction, under one advisory lock shared by every writer of
artifacts (the loaders and template-embed):

* a file whose bytes are those last loaded from the same path is not parsed again (``content_hash``);
* a file that cannot be loaded (unreadable, malformed, off the schema) is reported and changes
  nothing: the artifact it held stays as it was;
* a (type, name) declared by two files is reported for each and neither is loaded, nor is a file
  declaring the (type, name) of an artifact another writer owns;
* a changed content gets the next ``version``, the content it replaces going to
  ``autopilot.knowledge_artifact_versions`` first; a file only moved or reformatted keeps its version;
* with deletions on (template-sync), an artifact whose file is gone, or now declares another
  (type, name), is deleted with its versions.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from .documents import InvalidDocument, Problem, parse_json_text, schema_problem

# the advisory lock (autopilot._job_lock_key) of every writer of knowledge artifacts
ARTIFACTS_LOCK = "knowledge-artifacts"


@dataclass(frozen=True, slots=True)
class Template:
    path: str
    artifact_type: str
    name: str
    content: str  # the file's text, jsonb input (checked)
    content_hash: str  # sha256 of the file's bytes

    @property
    def key(self) -> tuple[str, str]:
        return (self.artifact_type, self.name)


@dataclass(frozen=True, slots=True)
class Known:
    """An artifact already in the database."""

    id: int
    artifact_type: str
    name: str
    source: str | None
    source_path: str | None
    content_hash: str | None


@dataclass
class Applied:
    """What a load did: counts, and the files it left out with their reasons."""

    added: int = 0
    changed: int = 0  # content changed: a new version
    unchanged: int = 0  # bytes unchanged, or only moved / reformatted
    deleted: int = 0
    rewritten: int = 0  # rows rewritten without a new version (the file moved, or was reformatted)
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "invalid": len(self.problems),
        }


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_template(path: str, data: bytes, digest: str | None = None) -> Template | Problem:
    """The template in a file's bytes, or why it is not one."""
    try:
        document, text = parse_json_text(data)
    except InvalidDocument as error:
        return Problem(path, str(error))
    problem = schema_problem(document)
    if problem is not None:
        return Problem(path, problem)
    return Template(path, document["type"], document["name"], text, digest or file_hash(data))


def lock(conn: psycopg.Connection) -> None:
    """Waits for, then holds until the transaction ends, the lock of the writers of knowledge artifacts."""
    conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(autopilot._job_lock_key(%s))", [ARTIFACTS_LOCK])


def known_of_source(conn: psycopg.Connection, source: str) -> dict[str, list[Known]]:
    """The artifacts ``source`` wrote, by their file's path."""
    by_path: dict[str, list[Known]] = defaultdict(list)
    for row in conn.execute(
        "SELECT a.id, a.artifact_type, a.name, a.source, a.source_path, a.content_hash"
        " FROM autopilot.knowledge_artifacts AS a WHERE a.source = %s",
        [source],
    ):
        by_path[row[4]].append(Known(*row))
    return by_path


def apply(
    conn: psycopg.Connection,
    source: str,
    known: dict[str, list[Known]],
    templates: Iterable[Template],
    problems: Iterable[Problem],
    present: set[str],
    *,
    unchanged: int,
    deletions: bool,
) -> Applied:
    """Applies a run's parsed files in the caller's transaction (which holds :func:`lock`).

    ``known``: :func:`known_of_source` read under the lock. ``templates`` and ``problems``: the files of
    this run that were read (changed, or new); ``unchanged`` counts those skipped for their unchanged
    bytes. ``present``: every template path the source holds now, read or not. With ``deletions``, an
    artifact of this source that no file holds any more is deleted."""
    applied = Applied(unchanged=unchanged, problems=list(problems))
    failed_paths = {p.path for p in applied.problems}

    # a (type, name) declared by two files of this run: neither is loaded
    declared: dict[tuple[str, str], list[Template]] = defaultdict(list)
    for template in templates:
        declared[template.key].append(template)
    candidates: dict[tuple[str, str], Template] = {}
    for key, group in declared.items():
        if len(group) == 1:
            candidates[key] = group[0]
            continue
        paths = sorted(t.path for t in group)
        for template in group:
            others = ", ".join(p for p in paths if p != template.path)
            applied.problems.append(
                Problem(
                    template.path, f"declares {key[0]} {key[1]!r}, as {others} does too: neither is loaded"
                )
            )
            failed_paths.add(template.path)
    loaded_paths = {t.path for t in candidates.values()}

    def holds(row: Known) -> bool:
        """Whether the artifact's file still declares it: present, and not read again this run as a
        valid template (a file that failed to load keeps what it held)."""
        return row.source_path in present and row.source_path not in loaded_paths

    own = {(row.artifact_type, row.name): row for rows in known.values() for row in rows}
    foreign = _foreign_owners(conn, source, [k for k in candidates if k not in own])

    inserts: list[Template] = []
    updates: list[tuple[Known, Template]] = []
    for key, template in sorted(candidates.items()):
        row = own.get(key)
        if row is None:
            if key in foreign:
                owner = foreign[key] or "another writer"
                applied.problems.append(
                    Problem(
                        template.path, f"declares {key[0]} {key[1]!r}, an artifact {owner} wrote: not loaded"
                    )
                )
                failed_paths.add(template.path)
            else:
                inserts.append(template)
        elif row.source_path != template.path and holds(row):
            applied.problems.append(
                Problem(
                    template.path,
                    f"declares {key[0]} {key[1]!r}, as {row.source_path} does (loaded before): not loaded",
                )
            )
            failed_paths.add(template.path)
        else:
            updates.append((row, template))

    deletes: list[int] = []
    if deletions:
        moved_or_kept = {template.key for _, template in updates}
        for rows in known.values():
            for row in rows:
                if (row.artifact_type, row.name) in moved_or_kept or holds(row):
                    continue
                if row.source_path in failed_paths:
                    continue  # its file failed to load this run: what it held stays
                deletes.append(row.id)

    if deletes:
        applied.deleted = conn.execute(
            "DELETE FROM autopilot.knowledge_artifacts AS a WHERE a.id = ANY(%s) AND a.source = %s",
            [deletes, source],
        ).rowcount
    if updates:
        applied.changed, applied.rewritten = _update(conn, updates)
        applied.unchanged += len(updates) - applied.changed
    if inserts:
        added = _insert(conn, source, inserts)
        applied.added = len(added)
        for template in inserts:
            if template.key not in added:  # written meanwhile by a writer that does not take the lock
                applied.problems.append(
                    Problem(
                        template.path,
                        f"declares {template.key[0]} {template.key[1]!r}, written meanwhile by"
                        " another writer: not loaded",
                    )
                )
    applied.problems.sort(key=lambda p: p.path)
    return applied


def _foreign_owners(
    conn: psycopg.Connection, source: str, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], str | None]:
    """The artifacts among ``keys`` that another writer owns, with its source."""
    if not keys:
        return {}
    rows = conn.execute(
        "SELECT a.artifact_type, a.name, a.source FROM autopilot.knowledge_artifacts AS a"
        " INNER JOIN unnest(%s::text[], %s::text[]) AS k (artifact_type, name)"
        " ON a.artifact_type = k.artifact_type AND a.name = k.name"
        " WHERE a.source IS DISTINCT FROM %s",
        [[k[0] for k in keys], [k[1] for k in keys], source],
    )
    return {(t, n): s for t, n, s in rows}


def _payload(items: list[tuple[int | None, Template]]) -> str:
    """The templates as one JSON array for jsonb_to_recordset: each content is the file's own (checked)
    JSON text, spliced in as it is, so that the server parses it once and Python never encodes it
    again (10,000 templates: one parameter instead of arrays of escaped texts)."""
    records = []
    for artifact_id, template in items:
        head = json.dumps(
            {
                "id": artifact_id,
                "t": template.artifact_type,
                "n": template.name,
                "p": template.path,
                "h": template.content_hash,
            }
        )
        records.append(f'{head[:-1]},"c":{template.content}}}')
    return "[" + ",".join(records) + "]"


_ROWS = "jsonb_to_recordset(%s::jsonb) AS u (id bigint, t text, n text, p text, h text, c jsonb)"


def _insert(conn: psycopg.Connection, source: str, templates: list[Template]) -> set[tuple[str, str]]:
    rows = conn.execute(
        "INSERT INTO autopilot.knowledge_artifacts AS a"
        " (artifact_type, name, content, source, source_path, content_hash)"
        f" SELECT u.t, u.n, u.c, %s, u.p, u.h FROM {_ROWS}"
        " ON CONFLICT (artifact_type, name) DO NOTHING"
        " RETURNING a.artifact_type, a.name",
        [source, _payload([(None, t) for t in templates])],
    ).fetchall()
    return {(t, n) for t, n in rows}


def _update(conn: psycopg.Connection, updates: list[tuple[Known, Template]]) -> tuple[int, int]:
    """Rewrites the artifacts whose file changed; a changed content first keeps the one it replaces as
    a version. Returns (new versions, rows rewritten)."""
    payload = _payload([(row.id, template) for row, template in updates])
    versioned = conn.execute(
        "INSERT INTO autopilot.knowledge_artifact_versions"
        " (artifact_id, version, content, content_hash, source, source_path, valid_from, valid_until)"
        " SELECT a.id, a.version, a.content, a.content_hash, a.source, a.source_path, a.updated_at,"
        " greatest(a.updated_at, now())"
        f" FROM autopilot.knowledge_artifacts AS a INNER JOIN {_ROWS} ON a.id = u.id"
        " WHERE a.content IS DISTINCT FROM u.c",
        [payload],
    ).rowcount
    rewritten = conn.execute(
        "UPDATE autopilot.knowledge_artifacts AS a"
        " SET content = u.c, content_hash = u.h, source_path = u.p,"
        " version = a.version + CASE WHEN a.content IS DISTINCT FROM u.c THEN 1 ELSE 0 END,"
        " updated_at = now()"
        f" FROM {_ROWS}"
        " WHERE a.id = u.id"
        " AND (a.content IS DISTINCT FROM u.c OR a.content_hash IS DISTINCT FROM u.h"
        " OR a.source_path IS DISTINCT FROM u.p)",
        [payload],
    ).rowcount
    return versioned, rewritten


def summary_line(where: str, seen: int, applied: Applied, *, limit: int = 5) -> str:
    """The run's one line (its job_runs.message)."""
    counts = applied.counts()
    parts = [f"{counts['added']} added", f"{counts['changed']} changed"]
    if counts["deleted"]:
        parts.append(f"{counts['deleted']} deleted")
    parts.append(f"{counts['unchanged']} unchanged")
    line = f"{where}: {seen} template files; " + ", ".join(parts)
    return line + problems_text(applied.problems, limit=limit)


def problems_text(problems: list[Problem], *, limit: int = 5) -> str:
    if not problems:
        return ""
    shown = "; ".join(str(p) for p in problems[:limit])
    more = (
        f"; and {len(problems) - limit} more (the runner's log names each)" if len(problems) > limit else ""
    )
    return f"; {len(problems)} not loaded: {shown}{more}"
