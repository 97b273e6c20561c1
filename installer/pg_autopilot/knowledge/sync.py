"""template-sync: the JSON templates (``*.json``) of a git repository's branch into
``autopilot.knowledge_artifacts`` (source ``template-sync``), change by change.

The branch is fetched into a bare clone of the runner's own (``template_sync.directory``; see
:mod:`.git`), then, in one transaction: the files that changed between the commit last synced
(``autopilot.template_sync_state``) and the branch's tip (``git diff-tree --no-renames``) are read and
applied as :mod:`.templates` says, deletions included, and the tip is recorded. Nothing is written
when nothing changed. The whole tree is applied instead (unchanged files, by their bytes, still
skipped) the first time, after the repository or the branch setting changed, and with ``full``.

Everything that can fail before the transaction fails the run with nothing changed: the repository
unreachable, authentication refused, the branch missing, or rewritten (force-pushed: its tip does not
descend from the commit last synced; ``full`` accepts the branch as it now is).
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from . import KnowledgeError, check_cancelled, setting
from .documents import MAX_FILE_BYTES, Problem, name_problem
from .git import Git, parse_remote
from .templates import (
    Applied,
    Known,
    Template,
    apply,
    file_hash,
    known_of_source,
    lock,
    read_template,
    summary_line,
)

SOURCE = "template-sync"
FETCHED_REF = "refs/autopilot/fetched"
REGULAR_MODES = ("100644", "100755")
SUFFIX = ".json"


@dataclass
class SyncResult:
    repository: str  # as messages show it
    branch: str
    old: str | None = None
    new: str | None = None
    files: int = 0  # template files in the branch's tree
    full: bool = False
    applied: Applied | None = None  # None: nothing to apply

    def line(self) -> str:
        if not self.repository:
            return "template_sync.repository is not set: nothing to sync"
        where = f"template-sync {self.repository} {self.branch}"
        if self.applied is None:
            return f"{where}: up to date at {self.new[:12]}"
        span = (
            f"{self.old[:12]}..{self.new[:12]}"
            if self.old and not self.full
            else f"{self.new[:12]} (whole tree)"
        )
        return summary_line(f"{where} {span}", self.files, self.applied)


def check_branch(branch: str) -> str:
    branch = branch.strip()
    valid = (
        branch
        and not branch.startswith("-")
        and not re.search(r"[\x00-\x20\x7f]", branch)
        and subprocess.run(
            ["git", "check-ref-format", f"refs/heads/{branch}"], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not valid:
        raise KnowledgeError(
            f"template_sync.branch {branch!r} is not a valid branch name",
            hint="autopilot settings template_sync.branch main",
        )
    return branch


def sync(
    conn: psycopg.Connection,
    *,
    full: bool = False,
    progress: Callable[..., None] | None = None,
    cancelled: threading.Event | None = None,
    deadline: float | None = None,
) -> SyncResult:
    """One run of template-sync with the settings of ``conn``'s database; the database's writes in one
    transaction of ``conn``, after the fetch."""
    repository = setting(conn, "template_sync.repository").strip()
    branch = setting(conn, "template_sync.branch")
    directory = setting(conn, "template_sync.directory")
    conn.commit()
    if not repository:
        return SyncResult("", branch)
    remote = parse_remote(repository)
    branch = check_branch(branch)
    result = SyncResult(remote.display, branch, full=full)

    with Git(directory, remote, cancelled=cancelled, deadline=deadline) as git, git.exclusive():
        git.prepare()
        new = result.new = git.fetch(branch, FETCHED_REF)
        tree, bad_names = [], []
        for mode, blob, path in git.tree(new):
            if path.endswith(SUFFIX):
                if bad_name := name_problem(path):
                    bad_names.append(bad_name)
                else:
                    tree.append((mode, blob, path))
        present = {path for mode, _, path in tree if mode in REGULAR_MODES}
        result.files = len(present)

        with conn.transaction():
            lock(conn)
            state = conn.execute(
                "SELECT s.repository, s.branch, s.commit_sha FROM autopilot.template_sync_state AS s"
            ).fetchone()
            if state is not None and (state[0], state[1]) == (remote.url, branch) and not full:
                old = result.old = state[2]
                if old == new:
                    return result  # up to date: nothing written
                if not git.has_commit(old) or not git.is_ancestor(old, new):
                    raise KnowledgeError(
                        f"template-sync: the branch {branch} of {remote.display} was rewritten "
                        f"(force-pushed?): its tip {new[:12]} does not descend from {old[:12]}, the commit "
                        "last synced; nothing was changed",
                        hint="If the rewrite is meant, run `autopilot knowledge sync --full`: the artifacts "
                        "then follow the branch as it is now (those of files no longer there are deleted).",
                    )
                changes = git.diff(old, new)
            else:
                result.full = True
                changes = [("A", mode, blob, path) for mode, blob, path in tree]

            known = known_of_source(conn, SOURCE)
            problems: list[Problem] = list(bad_names)
            to_read: dict[str, str] = {}
            for status, mode, blob, path in changes:
                if not path.endswith(SUFFIX) or status == "D" or name_problem(path):
                    continue  # a deleted file: its artifact is no longer held (present says so)
                if mode not in REGULAR_MODES:
                    kind = "a symbolic link" if mode == "120000" else "not a regular file"
                    problems.append(Problem(path, f"{kind} (mode {mode}): not read"))
                    continue
                to_read[path] = blob
            # files of the tree that hold no artifact are read again, changed or not: one that failed
            # for another file's sake (a duplicate name) may load now, one that still fails is named
            # again, and an artifact deleted meanwhile (old-artifact-cleanup) comes back
            for mode, blob, path in tree:
                if mode in REGULAR_MODES and path not in known:
                    to_read.setdefault(path, blob)
            unchanged = len(present - set(to_read))
            applied = _apply_blobs(
                conn, git, known, sorted(to_read.items()), problems, present, unchanged, progress, cancelled
            )
            result.applied = applied
            conn.execute(
                "INSERT INTO autopilot.template_sync_state AS s (repository, branch, commit_sha, summary)"
                " VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (singleton) DO UPDATE SET repository = excluded.repository,"
                " branch = excluded.branch, commit_sha = excluded.commit_sha, synced_at = now(),"
                " summary = excluded.summary",
                [remote.url, branch, new, Jsonb(applied.counts())],
            )
    return result


def _apply_blobs(
    conn: psycopg.Connection,
    git: Git,
    known: dict[str, list[Known]],
    to_read: list[tuple[str, str]],
    problems: list[Problem],
    present: set[str],
    unchanged: int,
    progress: Callable[..., None] | None,
    cancelled: threading.Event | None,
) -> Applied:
    sizes = git.blob_sizes(sorted({blob for _, blob in to_read})) if to_read else {}
    small = sorted({blob for _, blob in to_read if sizes.get(blob, 0) <= MAX_FILE_BYTES})
    contents = git.blobs(small)
    templates: list[Template] = []
    for done, (path, blob) in enumerate(to_read, 1):
        check_cancelled(cancelled, "template-sync")
        data = contents.get(blob)
        if data is None:
            problems.append(
                Problem(path, f"too large ({sizes.get(blob)} bytes, the cap is {MAX_FILE_BYTES})")
            )
            continue
        digest = file_hash(data)
        if (rows := known.get(path)) and all(r.content_hash == digest for r in rows):
            unchanged += 1
        else:
            outcome = read_template(path, data, digest)
            (problems if isinstance(outcome, Problem) else templates).append(outcome)
        if progress is not None:
            progress(files=done, of=len(to_read))
    return apply(conn, SOURCE, known, templates, problems, present, unchanged=unchanged, deletions=True)
