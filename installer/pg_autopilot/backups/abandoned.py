"""The cleanup of backups a killed runner left behind."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from .archives import _leftovers, _remove, intent_path
from .rows import LOCK_CLASS, BackupRow, _backup_rows, _lock_key
from .trust import _read_record, _record_names, own_archive


def _clean_abandoned(
    conn: psycopg.Connection, identity: dict, directory: Path
) -> tuple[list[int], list[str]]:
    """Rows this database recorded that were left ``running``/``succeeded`` by a runner that died (their
    advisory lock is free): mark them failed and remove their files -- only files the runner made: in
    ``directory``, named as the runner names that row's files, with the runner's intent record
    beside them naming that backup (see own_archive). Anything else is left on disk and reported. Rows
    recorded elsewhere (inherited by a restored copy) are left alone: their files belong to the original.
    (cleaned ids, problems): a row whose leftovers cannot be removed is left as it is, to be tried again."""
    cleaned, problems = [], []
    rows = _backup_rows(
        conn,
        "status IN ('running', 'succeeded') AND details -> 'recorded_in' = %s ORDER BY id",
        [Jsonb(identity)],
    )
    for row in rows:
        backup_id = row.id
        got = conn.execute(
            "SELECT pg_catalog.pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)]
        ).fetchone()[0]
        if not got:
            continue  # still running
        try:
            note, problem = _remove_leftovers(row, directory, identity)
            if problem is not None:
                problems.append(problem)
            if note is None:
                continue
            conn.execute(
                "UPDATE autopilot.backup_metadata SET status = 'failed', "
                "finished_at = coalesce(finished_at, now()), error = %s "
                "WHERE id = %s AND status IN ('running', 'succeeded')",
                [
                    "abandoned: the backup process stopped before finishing (runner killed or crashed)"
                    + note,
                    backup_id,
                ],
            )
            cleaned.append(backup_id)
        finally:
            conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)])
    return cleaned, problems


def _remove_leftovers(row: BackupRow, directory: Path, identity: dict) -> tuple[str | None, str | None]:
    """Remove the files of the abandoned backup ``row`` when they are the runner's own (see _clean_abandoned):
    (what its error adds: "" or why its files were left on disk -- None when they could not be removed, to
    leave the row as it is; the problem to report, if any)."""
    archive, problem = own_archive(row, directory)
    if problem:
        named = Path(row.file_path) if row.file_path else None
        if named is not None and any(os.path.lexists(p) for p in _leftovers(named)):
            report = (
                f"abandoned backup #{row.id}: not removing {row.file_path} (and the files beside "
                f"it): {problem}; only the runner's own files in the backup directory are deleted"
            )
            return f"; its files were left on disk: {problem}", report
        return "", None
    present = [p for p in _leftovers(archive) if os.path.lexists(p)]
    # the intent record, not the manifest: a manifest is written only for a verified backup, so a row someone
    # turned back to running never gets a verified backup deleted
    record = _read_record(intent_path(archive))
    if present and not _record_names(record, row, archive, identity):
        report = (
            f"abandoned backup #{row.id}: not removing {archive} (and the files beside it): "
            "no intent record of the runner names them"
        )
        return "; its files were left on disk: no intent record of the runner names them", report
    if present:
        try:
            for leftover in present:
                _remove(leftover)
        except OSError as exc:
            report = (
                f"abandoned backup #{row.id}: cannot remove {exc.filename or archive}: "
                f"{exc.strerror or exc}; left as it is, the next backup tries again"
            )
            return None, report
    return "", None
