"""knowledge-migration: the JSON templates of a directory (``knowledge.templates_directory``, ``*.json`` at
any depth) into ``autopilot.knowledge_artifacts``, in one transaction (see :mod:`.templates` for the
rules). It adds and changes artifacts, never deletes one: a template removed from the directory stays
in the database (template-sync, which mirrors a repository, deletes)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from ..ingest.files import CodebaseError, Skip, list_files
from . import KnowledgeError, check_cancelled, directory_setting
from .documents import ListedReader, Problem, name_problem
from .templates import Applied, Template, apply, known_of_source, lock, read_template, summary_line

SOURCE = "knowledge-migration"
SETTING = "knowledge.templates_directory"


@dataclass
class MigrationResult:
    directory: str
    files: int
    applied: Applied | None  # None: no such directory

    def line(self) -> str:
        if self.applied is None:
            return f"no templates directory {self.directory} ({SETTING}): nothing loaded"
        return summary_line(f"templates {self.directory}", self.files, self.applied)


def migrate(
    conn: psycopg.Connection,
    directory: str | None = None,
    *,
    progress: Callable[..., None] | None = None,
    cancelled: threading.Event | None = None,
) -> MigrationResult:
    """Loads the templates directory (the setting's, unless ``directory`` is given) in one transaction
    of ``conn``. The default directory, absent, loads nothing; another that does not exist is an error."""
    directory, configured = directory_setting(conn, SETTING, directory)
    conn.commit()  # the setting's read ends its transaction: the load is one of its own
    if not configured:
        return MigrationResult(directory, 0, None)
    problems: list[Problem] = []
    present: set[str] = set()

    def skipped(skip: Skip) -> None:
        problems.append(Problem(skip.path, f"{skip.reason}" + (f" ({skip.detail})" if skip.detail else "")))
        present.add(skip.path)

    def unreadable_directory(path: str, error: OSError) -> None:
        problems.append(Problem(path + "/", f"directory not readable: {error.strerror or error}"))

    with conn.transaction():
        lock(conn)
        known = known_of_source(conn, SOURCE)
        try:
            paths = list(
                list_files(directory, ("**/*.json",), (), on_error=unreadable_directory, on_skip=skipped)
            )
        except CodebaseError as error:
            raise KnowledgeError(f"the templates directory cannot be listed: {error}") from error
        present.update(paths)
        templates: list[Template] = []
        unchanged = 0
        reader = ListedReader(directory)
        for done, path in enumerate(paths, 1):
            check_cancelled(cancelled, "knowledge-migration")
            if bad_name := name_problem(path):
                problems.append(bad_name)
                continue
            content = reader.read(path)
            if isinstance(content, Skip):
                skipped(content)
            elif (rows := known.get(path)) and all(r.content_hash == content.sha256 for r in rows):
                unchanged += 1
            else:
                outcome = read_template(path, content.data, content.sha256)
                (problems if isinstance(outcome, Problem) else templates).append(outcome)
            if progress is not None:
                progress(files=done, of=len(paths))
        applied = apply(
            conn, SOURCE, known, templates, problems, present, unchanged=unchanged, deletions=False
        )
    return MigrationResult(directory, len(paths), applied)
