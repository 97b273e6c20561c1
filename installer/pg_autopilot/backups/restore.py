"""Restore into a new database, through a database of a temporary name (see restoring)."""

from __future__ import annotations

import contextlib
import re
import secrets as secrets_mod
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from .. import installer
from ..db import connect
from ..errors import AutopilotError, BackupFailed, ConnectionFailed, RestoreFailed, translate
from .credentials import libpq_target, sweep_private
from .processes import _child, _first_line, _run, _scrub
from .programs import pg_bindir
from .restoring import RESTORE_LOCK_CLASS, _restoring_prefix, drop_half_restored
from .rows import BackupRow, _backup_rows
from .trust import check_backup, own_archive

# seconds a failed restore keeps trying to drop its half-restored database while the server is unreachable
RESTORE_DROP_WAIT = 10.0


@dataclass
class RestoreResult:
    backup_id: int
    database: str  # the database the backup was taken of
    into: str
    path: Path
    sha256: str
    seconds: float
    skipped: list[str] = field(default_factory=list)  # newer verified rows not trusted, so not chosen
    excluded: list[str] = field(default_factory=list)  # archive entries not restored (pg_cron's own)
    dropped: list[str] = field(default_factory=list)  # half-restored databases of earlier restores, dropped
    warnings: list[str] = field(default_factory=list)


# pg_cron's own objects in a `pg_restore --list`: the extension (it can only be created in the database
# cron.database_name names, so restoring it into a copy fails), its comment, and everything in schema cron
# (its jobs and their history, the sequences): the copy gets no pg_cron schedules
_PG_CRON_EXTENSION = re.compile(r"^\d+; \d+ \d+ EXTENSION - pg_cron ")
_PG_CRON_ENTRY = re.compile(
    r"^\d+; \d+ \d+ (?:EXTENSION - pg_cron |COMMENT - EXTENSION pg_cron |SCHEMA - cron |ACL - SCHEMA cron "
    r"|[A-Z][A-Z ]*? cron )"
)


def restore_list(pg_restore: Path, archive: Path) -> tuple[str | None, list[str]]:
    """(a ``--use-list`` listing without pg_cron's objects, the entries left out), or (None, []) when the
    archive holds no pg_cron."""
    listing = _run([str(pg_restore), "--list", str(archive)])
    text = listing.stdout.decode(errors="replace")
    if listing.returncode != 0:
        raise RestoreFailed(
            f"cannot list {archive}: {_first_line(listing.stderr.decode(errors='replace'))}",
        )
    lines = text.splitlines(keepends=True)
    if not any(_PG_CRON_EXTENSION.match(line) for line in lines):
        return None, []
    excluded = [line.strip() for line in lines if _PG_CRON_ENTRY.match(line)]
    kept = "".join(";" + line if _PG_CRON_ENTRY.match(line) else line for line in lines)
    return kept, excluded


def _drop_restoring(conn: psycopg.Connection, dsn: str | None, name: str) -> tuple[bool, str | None]:
    """Drop the database a failed restore was restoring into, through a new connection when ``conn`` is gone,
    retrying for RESTORE_DROP_WAIT seconds while the server cannot be reached (it restarts): (dropped, why
    not)."""
    deadline = time.monotonic() + RESTORE_DROP_WAIT
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    while True:
        try:
            if not conn.closed and not conn.broken:
                conn.execute(drop)
            else:
                with connect(dsn, autocommit=True) as other:
                    other.execute(drop)
            return True, None
        except (psycopg.Error, AutopilotError) as exc:
            reason = exc.message if isinstance(exc, AutopilotError) else translate(exc).message
            unreachable = isinstance(exc, ConnectionFailed | psycopg.OperationalError) or conn.broken
            if not unreachable or time.monotonic() >= deadline:
                return False, _first_line(reason)
        time.sleep(0.5)


def restore_backup(
    dsn: str | None,
    backup_id: int | None,
    into: str,
    *,
    database: str | None = None,
    jobs: int = 1,
    directory: str | Path | None = None,
) -> RestoreResult:
    """Restore a verified backup (default: the latest verified one that can be trusted, of ``database`` when
    given) into the NEW database ``into``, after checking that the backup is the runner's (check_backup: in
    ``directory``, default backups.directory, named as the runner names it, its manifest, no future times)
    and its sha256. An existing database is refused. pg_cron's own objects are not restored (see
    restore_list).

    pg_restore restores into a database of a temporary name (RESTORING_PREFIX...), renamed to ``into`` only
    once it has succeeded: ``into`` never exists half-restored. A failed or interrupted restore drops the
    temporary database at once, or -- when the server cannot be reached (a restart) -- the next restore or
    backup drops it; `autopilot status` shows it until then."""
    with connect(dsn, autocommit=True) as conn:
        dropped, warnings = _prepare_restore(conn, into)
        if directory is None:
            directory = conn.execute("SELECT autopilot.get_setting('backups.directory')").fetchone()[0]
        where = Path(directory)
        chosen, skipped = _choose_backup(conn, backup_id, database, where)
        archive, _ = own_archive(chosen, where)
        bindir = pg_bindir(conn.info.server_version // 10000, "pg_restore")
        listing, excluded = restore_list(bindir / "pg_restore", archive)
        seconds = _restore_locked(conn, dsn, chosen.id, into, bindir / "pg_restore", jobs, listing, archive)
        return RestoreResult(
            chosen.id,
            chosen.database,
            into,
            archive,
            chosen.sha256,
            seconds,
            skipped,
            excluded,
            dropped,
            warnings,
        )


def _restore_locked(
    conn: psycopg.Connection,
    dsn: str | None,
    backup_id: int,
    into: str,
    pg_restore: Path,
    jobs: int,
    listing: str | None,
    archive: Path,
) -> float:
    """Restore into a database of a new temporary name, holding the restore lock that marks it live until it
    is renamed to ``into`` or dropped again (_restore_into): the seconds it took."""
    restoring = _restoring_prefix(conn) + secrets_mod.token_hex(8)
    conn.execute(
        "SELECT pg_catalog.pg_advisory_lock(%s, pg_catalog.hashtext(%s))", [RESTORE_LOCK_CLASS, restoring]
    )
    started = time.monotonic()
    try:
        _restore_into(conn, dsn, backup_id, restoring, into, pg_restore, jobs, listing, archive)
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute(
                "SELECT pg_catalog.pg_advisory_unlock(%s, pg_catalog.hashtext(%s))",
                [RESTORE_LOCK_CLASS, restoring],
            )
    return time.monotonic() - started


def _restore_into(
    conn: psycopg.Connection,
    dsn: str | None,
    backup_id: int,
    restoring: str,
    into: str,
    pg_restore: Path,
    jobs: int,
    listing: str | None,
    archive: Path,
) -> None:
    """Create the database ``restoring``, pg_restore into it, rename it to ``into``; whatever stops that once
    it was created drops it again (_drop_failed_restore)."""
    created = False
    try:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(restoring)))
        created = True
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(restoring),
                sql.Literal(f'autopilot: restoring backup #{backup_id} into "{into}"'),
            )
        )
        code, stderr = _pg_restore(dsn, restoring, pg_restore, jobs, listing, archive)
        if code != 0:
            raise RestoreFailed(
                f'restoring backup #{backup_id} into "{into}" failed: '
                f"{_first_line(stderr) or f'pg_restore exited with code {code}'}"
            )
        _rename_restored(conn, restoring, into)
        created = False
        with contextlib.suppress(psycopg.Error):
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(sql.Identifier(into)))
    except BaseException as exc:
        if not created:
            raise
        failure = _drop_failed_restore(conn, dsn, exc, backup_id, restoring, into)
        if failure is None:
            raise
        raise failure from exc


def _prepare_restore(conn: psycopg.Connection, into: str) -> tuple[list[str], list[str]]:
    """Before a restore: autopilot is installed, the leftovers of earlier runs are gone, ``into`` does not
    exist. The half-restored databases dropped, and the problems (drop_half_restored)."""
    if installer.installed(conn) is None:
        raise RestoreFailed(f'autopilot is not installed in database "{conn.info.dbname}"')
    dropped, warnings = drop_half_restored(conn)
    with contextlib.suppress(OSError, BackupFailed):
        sweep_private()  # the passfiles of a run killed outright
    exists = conn.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", [into]).fetchone()
    if exists:
        raise RestoreFailed(
            f'database "{into}" already exists: restore only into a new database',
            hint="Choose another --into name (nothing was changed).",
        )
    return dropped, warnings


def _choose_backup(
    conn: psycopg.Connection, backup_id: int | None, database: str | None, where: Path
) -> tuple[BackupRow, list[str]]:
    """The backup to restore: #``backup_id``, or the latest verified one (of ``database``) check_backup
    trusts; then its sha256 is checked too. (the row, the newer ones not chosen because not trusted)."""
    now = conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()[0]
    skipped: list[str] = []
    if backup_id is None:
        chosen = None
        for row in _backup_rows(
            conn,
            "status = 'verified' AND (%s::text IS NULL OR database_name = %s) "
            "ORDER BY finished_at DESC, id DESC",
            [database, database],
        ):
            problem = check_backup(row, where, now)
            if problem is None:
                chosen = row
                break
            skipped.append(f"backup #{row.id} of {row.database} not chosen: it is not trusted ({problem})")
        if chosen is None:
            raise RestoreFailed(
                "no verified backup to restore"
                + (f' of database "{database}"' if database else "")
                + (f" that can be trusted; {'; '.join(skipped[:3])}" if skipped else ""),
                hint="Take one with `autopilot backups run`"
                + (" (or pass --directory: where the backups are)." if skipped else "."),
            )
    else:
        found = _backup_rows(conn, "id = %s", [backup_id])
        if not found:
            raise RestoreFailed(f"no backup #{backup_id} in autopilot.backup_metadata")
        chosen = found[0]
        if chosen.status != "verified":
            raise RestoreFailed(
                f"backup #{chosen.id} is {chosen.status}, not verified: it cannot be restored",
                hint=f"`autopilot backups verify {chosen.id}` marks it verified again once its file is back "
                "as it was taken; `autopilot backups list` shows the others."
                if chosen.status in ("missing", "corrupt")
                else None,
            )
    problem = check_backup(chosen, where, now, full=True)
    if problem:
        raise RestoreFailed(
            f"backup #{chosen.id} cannot be restored: {problem}",
            hint="Nothing was changed. A backup is restored only from the backup directory "
            "(--directory), as the runner wrote it; run the restore as an OS user that can read it.",
        )
    return chosen, skipped


def _pg_restore(
    dsn: str | None, restoring: str, pg_restore: Path, jobs: int, listing: str | None, archive: Path
) -> tuple[int, str]:
    """Run pg_restore of ``archive`` into the database ``restoring`` (with the ``--use-list`` ``listing``
    when there is one): (its exit code, its stderr with the secrets scrubbed)."""
    with contextlib.ExitStack() as stack:
        conninfo, env, secrets = stack.enter_context(libpq_target(dsn, restoring))
        argv = [
            str(pg_restore),
            "--exit-on-error",
            "--no-password",
            f"--dbname={conninfo}",
        ]
        if jobs > 1:
            argv.append(f"--jobs={jobs}")
        if listing is not None:
            listfile = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".list"))
            listfile.write(listing)
            listfile.flush()
            argv.append(f"--use-list={listfile.name}")
        argv.append(str(archive))
        with tempfile.TemporaryFile() as errors:
            with _child(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, env=env
            ) as proc:
                code = proc.wait()
            errors.seek(0)
            stderr = _scrub(errors.read().decode(errors="replace"), secrets)
    return code, stderr


def _drop_failed_restore(
    conn: psycopg.Connection, dsn: str | None, exc: BaseException, backup_id: int, restoring: str, into: str
) -> RestoreFailed | None:
    """After ``exc`` stopped a restore: drop the database it was restoring into (_drop_restoring). The
    RestoreFailed to raise instead of ``exc``, or None to raise ``exc`` itself (a RestoreFailed, whose hint
    now says what became of that database)."""
    gone, why = _drop_restoring(conn, dsn, restoring)
    if gone:
        outcome = f'the new database was dropped again (nothing of "{into}" is left)'
    else:
        outcome = (
            f'the half-restored database "{restoring}" could NOT be dropped now ({why}): the '
            "next `autopilot backups restore` or backup drops it, and `autopilot status` shows it "
            "until then"
        )
    if isinstance(exc, RestoreFailed):
        exc.hint = outcome[0].upper() + outcome[1:] + "."
        return None
    if isinstance(exc, KeyboardInterrupt):
        what = f"interrupted ({exc or 'SIGINT'})"
    elif isinstance(exc, psycopg.Error):
        what = f"failed: {translate(exc).message}"
    else:
        what = f"failed: {exc}"
    return RestoreFailed(
        f'restoring backup #{backup_id} into "{into}" {what}',
        hint=outcome[0].upper() + outcome[1:] + ".",
    )


def _rename_restored(conn: psycopg.Connection, restoring: str, into: str) -> None:
    """ALTER DATABASE ... RENAME, waiting (a few seconds) for pg_restore's sessions to be gone."""
    deadline = time.monotonic() + 10
    while True:
        try:
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(restoring), sql.Identifier(into)
                )
            )
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
        except psycopg.errors.DuplicateDatabase as exc:
            raise RestoreFailed(
                f'database "{into}" was created while the backup was restored: restore only into a new '
                "database"
            ) from exc
