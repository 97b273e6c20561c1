"""templates-data-load: the templates_data directory (``templates_data.directory``) kept in step with
``autopilot.template_data``, one transaction per run.

A templates_data file is one JSON object or YAML mapping (``*.json``, ``*.yaml``, ``*.yml`` at any
depth): data the templates and the agents look up by name, such as framework lists or quality rules,
with no schema beyond that. Its name is its path without the extension (``frameworks/phoenix``), so
that a file may change format and stay itself. A run:

* loads new files and files whose bytes changed (sha256), and brings back a removed name whose file
  reappeared;
* marks ``removed`` the names whose file is gone (the row and its last content stay);
* leaves the row of a file it cannot load (unreadable, malformed, not an object, two files of one
  name) as it was, and says which file and why;
* changes nothing when a directory below the root cannot be read (its files would look deleted), or
  when the root does not exist (an unmounted volume is no reason to mark everything removed).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from ..ingest.files import CodebaseError, Skip, list_files
from . import KnowledgeError, check_cancelled, directory_setting
from .documents import (
    InvalidDocument,
    ListedReader,
    Problem,
    name_problem,
    parse_json_text,
    parse_yaml,
    to_json,
)
from .templates import problems_text

SETTING = "templates_data.directory"
LOCK = "templates-data-load"
FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def data_name(path: str) -> str:
    """``frameworks/phoenix.yaml`` -> ``frameworks/phoenix``."""
    return os.path.splitext(path)[0]


@dataclass
class DataResult:
    directory: str
    files: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    problems: list[Problem] = field(default_factory=list)
    missing: bool = False

    def counts(self) -> dict[str, int]:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "invalid": len(self.problems),
        }

    def line(self, limit: int = 5) -> str:
        if self.missing:
            return f"no templates_data directory {self.directory} ({SETTING}): nothing loaded"
        return (
            f"templates_data {self.directory}: {self.files} files; {self.added} added, "
            f"{self.changed} changed, {self.removed} removed, {self.unchanged} unchanged"
            + problems_text(self.problems, limit=limit)
        )


@dataclass(frozen=True, slots=True)
class _Row:
    file_path: str
    content_hash: str
    status: str


def load(
    conn: psycopg.Connection,
    directory: str | None = None,
    *,
    progress: Callable[..., None] | None = None,
    cancelled: threading.Event | None = None,
) -> DataResult:
    """One run of templates-data-load over the setting's directory (or ``directory``), in one transaction
    of ``conn``."""
    directory, configured = directory_setting(conn, SETTING, directory)
    conn.commit()
    result = DataResult(directory)
    if not configured:
        result.missing = True
        return result
    present: set[str] = set()  # names whose file is there, loadable or not

    def skipped(skip: Skip) -> None:
        result.problems.append(Problem(skip.path, skip.reason + (f" ({skip.detail})" if skip.detail else "")))
        present.add(data_name(skip.path))

    def unreadable_directory(path: str, error: OSError) -> None:
        raise KnowledgeError(
            f"templates_data: the directory {os.path.join(directory, path)} cannot be read "
            f"({error.strerror or error}); nothing was changed (its files would look removed)",
            hint="Let the runner's user read it, or move it out of the templates_data directory.",
        )

    with conn.transaction():
        conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(autopilot._job_lock_key(%s))", [LOCK])
        known = {
            name: _Row(path, digest, status)
            for name, path, digest, status in conn.execute(
                "SELECT d.name, d.file_path, d.content_hash, d.status FROM autopilot.template_data AS d"
            )
        }
        try:
            paths = list(
                list_files(
                    directory,
                    [f"**/*{ext}" for ext in FORMATS],
                    (),
                    on_error=unreadable_directory,
                    on_skip=skipped,
                )
            )
        except CodebaseError as error:
            raise KnowledgeError(f"templates_data: the directory cannot be listed: {error}") from error
        result.files = len(paths)
        by_name: dict[str, list[str]] = defaultdict(list)
        for path in paths:
            if bad_name := name_problem(path):
                result.problems.append(bad_name)
                continue
            by_name[data_name(path)].append(path)
        present.update(by_name)

        rows: list[tuple[str, str, str, str, str]] = []  # name, path, format, content, hash
        reader = ListedReader(directory)
        for done, (name, group) in enumerate(sorted(by_name.items()), 1):
            check_cancelled(cancelled, "templates-data-load")
            if progress is not None:
                progress(files=done, of=len(by_name))
            if len(group) > 1:
                for path in group:
                    others = ", ".join(p for p in group if p != path)
                    result.problems.append(
                        Problem(path, f"has the name {name!r}, as {others} does too: neither is loaded")
                    )
                continue
            path = group[0]
            content = reader.read(path)
            if isinstance(content, Skip):
                skipped(content)
                continue
            row = known.get(name)
            if row is not None and (row.file_path, row.content_hash, row.status) == (
                path,
                content.sha256,
                "loaded",
            ):
                result.unchanged += 1
                continue
            fmt = FORMATS[os.path.splitext(path)[1]]
            try:
                if fmt == "json":
                    document, text = parse_json_text(content.data)
                else:
                    document = parse_yaml(content.data)
                    text = to_json(document)
            except InvalidDocument as error:
                result.problems.append(Problem(path, str(error)))
                continue
            if not isinstance(document, dict):
                kind = "a list" if isinstance(document, list) else f"a single {type(document).__name__} value"
                result.problems.append(
                    Problem(path, f"holds {kind}; a templates_data file holds one object (a YAML mapping)")
                )
                continue
            rows.append((name, path, fmt, text, content.sha256))
            if row is None or row.status == "removed":
                result.added += 1  # new, or back after it was removed
            else:
                result.changed += 1

        gone = [name for name, row in known.items() if row.status == "loaded" and name not in present]
        if rows:
            conn.execute(
                "INSERT INTO autopilot.template_data AS d (name, file_path, format, content, content_hash)"
                " SELECT u.name, u.file_path, u.format, u.content::jsonb, u.content_hash"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
                " AS u (name, file_path, format, content, content_hash)"
                " ON CONFLICT (name) DO UPDATE SET file_path = excluded.file_path, format = excluded.format,"
                " content = excluded.content, content_hash = excluded.content_hash, status = 'loaded',"
                " loaded_at = now(), removed_at = NULL",
                [list(column) for column in zip(*rows, strict=True)],
            )
        if gone:
            result.removed = conn.execute(
                "UPDATE autopilot.template_data AS d SET status = 'removed', removed_at = now()"
                " WHERE d.name = ANY(%s) AND d.status = 'loaded'",
                [gone],
            ).rowcount
    result.problems.sort(key=lambda p: p.path)
    return result
