"""Retention: the verified backups beyond backups.<kind>_keep deleted."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psycopg

from .archives import _remove, manifest_path
from .rows import BackupRow, _backup_rows, _ours
from .trust import check_backup, own_archive


@dataclass
class Pruned:
    id: int
    database: str
    path: str | None
    files_removed: bool  # the archive was there and was deleted now
    missing: bool = False  # the archive was already gone (the record is pruned all the same)


def prune(
    conn: psycopg.Connection, kind: str, database: str, keep: int, identity: dict, directory: Path
) -> tuple[list[Pruned], list[str], list[str]]:
    """Delete the verified backups of (kind, database) beyond the newest ``keep`` verified ones:
    (pruned, errors, untrusted). Only backups check_backup trusts count and are deleted (their files are in
    ``directory``, named as the runner names them, with their manifest; their times not in the future); the
    others are reported in ``untrusted`` and left as they are, so a forged row can never push a real backup
    out. A record whose archive and manifest are both gone does not count, and becomes ``pruned`` once
    ``keep`` newer backups count. A record
    becomes ``pruned`` only once its files are gone; one whose files cannot be deleted stays ``verified``
    and is reported in ``errors`` (the next backup tries again)."""
    pruned, errors, untrusted = [], [], []
    now = conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()[0]
    rows = _backup_rows(
        conn,
        "kind = %s AND database_name = %s AND status = 'verified' ORDER BY finished_at DESC, id DESC",
        [kind, database],
    )
    counted = 0
    for row in rows:
        if not _ours(row.details, identity):
            continue  # recorded by another autopilot database (inherited by a restored copy): not ours
        archive, problem = own_archive(row, directory)
        gone = archive is not None and not any(os.path.lexists(p) for p in (archive, manifest_path(archive)))
        if gone and counted < keep:
            continue  # files gone (deleted by hand, an unmounted disk?): pruned once older than the kept ones
        if not gone:
            problem = check_backup(row, directory, now, identity=identity)
            if problem:
                untrusted.append(
                    f"{kind} backup #{row.id} of {database} is not trusted ({problem}): it does not count "
                    "toward retention and is left as it is"
                )
                continue
            counted += 1
            if counted <= keep:
                continue
        done, error = _prune_one(conn, row, kind, database, archive, gone)
        if error is not None:
            errors.append(error)
        elif done is not None:
            pruned.append(done)
    return pruned, errors, untrusted


def _prune_one(
    conn: psycopg.Connection, row: BackupRow, kind: str, database: str, archive: Path, gone: bool
) -> tuple[Pruned | None, str | None]:
    """Delete the archive, then the manifest, of a backup beyond those kept (unless they are ``gone``), then
    mark its row ``pruned``: (what was pruned, None when the row was no longer verified; the error when the
    files could not be deleted: the row stays verified)."""
    removed = False
    if not gone:
        try:
            removed = _remove(archive)
            _remove(manifest_path(archive))  # last: a manifest without its archive is obviously dangling
        except OSError as exc:
            error = (
                f"cannot delete {kind} backup #{row.id} of {database} "
                f"({exc.filename or archive}): {exc.strerror or exc}; it stays verified and the next "
                "backup tries again"
            )
            return None, error
    changed = conn.execute(
        "UPDATE autopilot.backup_metadata SET status = 'pruned', "
        "details = details || pg_catalog.jsonb_build_object('pruned_at', pg_catalog.now()) "
        # missing: `autopilot backups verify` found its files gone meanwhile (this deleted them)
        "WHERE id = %s AND status IN ('verified', 'missing')",
        [row.id],
    ).rowcount
    if not changed:
        return None, None
    return Pruned(row.id, database, row.file_path, removed, gone), None
