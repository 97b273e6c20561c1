"""The backup: run_backup and the backup of one database."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from .. import __version__, installer
from ..errors import AutopilotError, BackupFailed, translate
from .abandoned import _clean_abandoned
from .archives import (
    _fsync_path,
    _fsync_tree,
    _leftovers,
    _prepare_directory,
    _remove,
    _resolved,
    _write_manifest,
    archive_name,
)
from .credentials import libpq_target, sweep_private
from .dump import _confirm_streamed, _Dump, _dump
from .processes import BackupCancelled, _first_line, _register_private, _scrub, _unregister_private, _Watch
from .programs import check_pg_dump_version, pg_bindir, pg_dump_argv, program_version
from .progress import BackupProgress, DumpMeter, ProgressSink, archive_bytes
from .restore import drop_half_restored
from .retention import Pruned, prune
from .rows import LOCK_CLASS, _identity, _lock_key, _metadata_connection
from .settings import KINDS, Settings, read_settings
from .verify import Verification, verify_archive


@dataclass
class DatabaseBackup:
    id: int
    database: str
    kind: str
    format: str
    path: Path
    manifest: Path
    size_bytes: int
    sha256: str
    started_at: datetime
    finished_at: datetime
    verified_at: datetime
    dump_seconds: float
    verify_seconds: float
    pruned: list[Pruned] = field(default_factory=list)
    prune_errors: list[str] = field(default_factory=list)  # retention could not delete these (still verified)
    # verified rows retention does not trust (see check_backup): not counted, not deleted, reported
    untrusted: list[str] = field(default_factory=list)


@dataclass
class BackupResult:
    kind: str
    directory: Path
    backups: list[DatabaseBackup] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # database -> error
    abandoned: list[int] = field(default_factory=list)  # rows of killed runs cleaned up
    skipped: list[str] = field(default_factory=list)  # already verified by an earlier attempt of the job
    # leftovers of killed runs not removed (could not be, or not the runner's); verified rows not trusted
    warnings: list[str] = field(default_factory=list)

    @property
    def pruned(self) -> list[Pruned]:
        return [p for b in self.backups for p in b.pruned]

    @property
    def prune_errors(self) -> list[str]:
        return [e for b in self.backups for e in b.prune_errors]

    def summary(self) -> str:
        """One line for a log (problems first: a log may cut it short)."""
        parts = [f"retention: {e}" for e in self.prune_errors] + list(self.warnings)
        if self.failures:
            parts.append("failed: " + "; ".join(f"{d}: {e}" for d, e in self.failures.items()))
        done = ", ".join(f"#{b.id} {b.database} ({b.size_bytes} bytes)" for b in self.backups)
        parts.append(f"{self.kind} backup verified: {done}" if done else f"{self.kind} backup: nothing taken")
        if self.skipped:
            parts.append("verified by an earlier attempt of this job: " + ", ".join(self.skipped))
        if self.pruned:
            parts.append("pruned " + ", ".join(f"#{p.id}" for p in self.pruned))
        if self.abandoned:
            parts.append("cleaned up abandoned " + ", ".join(f"#{i}" for i in self.abandoned))
        return "; ".join(parts)


def run_backup(
    dsn: str | None,
    kind: str = "manual",
    *,
    directory: str | None = None,
    job_id: int | None = None,
    cancelled: threading.Event | None = None,
    deadline: float | None = None,
    progress: ProgressSink | None = None,
) -> BackupResult:
    """Back up every database of ``backups.databases`` (default: the DSN's); see the package docstring.

    ``job_id``: the runner job this is an attempt of. It is recorded with each backup, and an attempt backs
    up only the databases that have no verified backup from this job yet (a retry after one database failed
    does not take, and prune for, the others again). ``cancelled`` (set: stop) and ``deadline`` (a
    ``time.monotonic()`` value) are watched while pg_dump and the verification run: either kills them and
    raises BackupCancelled. ``progress`` gets a BackupProgress when each database's backup starts, every
    SAMPLE_SECONDS while pg_dump writes (bytes written, rate), when verifying starts, and when it is
    verified or has failed (see progress); it is called in this thread and must not block.

    Raises BackupFailed when any database failed (the others are still backed up; ``exc.result``)."""
    if kind not in KINDS:
        raise AutopilotError(f"unknown backup kind {kind!r}; one of {', '.join(KINDS)}")
    try:
        conn = _metadata_connection(dsn)
    except AutopilotError as exc:
        raise BackupFailed(f"backup not started: {exc.message}", hint=exc.hint) from exc
    try:
        with conn:
            return _run_backup(
                conn, dsn, kind, directory, job_id, _Watch(conn, cancelled, deadline, progress)
            )
    except psycopg.Error as exc:  # e.g. the server went away mid-run: still a BackupFailed for the runner
        raise BackupFailed(f"backup failed: {translate(exc).message}") from exc
    except OSError as exc:  # the file system refused something outside any one database's backup
        raise BackupFailed(f"backup failed: {exc}") from exc


def _verified_by_job(conn: psycopg.Connection, kind: str, job_id: int, identity: dict) -> set[str]:
    return {
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT database_name FROM autopilot.backup_metadata "
            "WHERE kind = %s AND details -> 'job_id' = to_jsonb(%s::bigint) AND verified_at IS NOT NULL "
            "AND status IN ('verified', 'pruned') AND details -> 'recorded_in' = %s",
            [kind, job_id, Jsonb(identity)],
        ).fetchall()
    }


def _record_failed(
    conn: psycopg.Connection,
    kind: str,
    databases: list[str],
    message: str,
    details: dict,
) -> None:
    """A failed row for each database a backup could not even start for (`autopilot status` shows it)."""
    with contextlib.suppress(psycopg.Error):
        for database in databases:
            conn.execute(
                "INSERT INTO autopilot.backup_metadata (kind, database_name, status, finished_at, error, "
                "details) VALUES (%s, %s, 'failed', clock_timestamp(), %s, %s)",
                [kind, database, message, Jsonb(details)],
            )


def _run_backup(
    conn: psycopg.Connection,
    dsn: str | None,
    kind: str,
    directory: str | None,
    job_id: int | None,
    watch: _Watch,
) -> BackupResult:
    if installer.installed(conn) is None:
        raise BackupFailed(
            f'autopilot is not installed in database "{conn.info.dbname}": nowhere to record backups',
            hint="Run `autopilot install`, or point --dsn at the database autopilot is installed in.",
        )
    settings = read_settings(conn)
    target = Path(directory) if directory else settings.directory
    target = target.absolute()
    result = BackupResult(kind, target)
    identity = _identity(conn)
    databases = list(settings.databases)
    if job_id is not None:
        done = _verified_by_job(conn, kind, job_id, identity)
        result.skipped = [d for d in databases if d in done]
        databases = [d for d in databases if d not in done]
        if not databases:
            return result
    base = {"format": settings.format, "recorded_in": identity}
    if job_id is not None:
        base["job_id"] = job_id
    try:
        pg_dump, pg_restore, dump_version = _client_programs(conn)
        _prepare_directory(target)
    except BackupFailed as exc:
        _record_failed(conn, kind, databases, exc.message, base)
        raise
    target = result.directory = _resolved(target)
    _clean_up_before(conn, identity, target, result)
    common = {
        "server_version": conn.execute("SHOW server_version").fetchone()[0],
        "pg_dump_version": dump_version,
        "pg_dump": str(pg_dump),
        "autopilot_version": installer.installed(conn).version,
        "pg_autopilot_version": __version__,
    }
    stopped, last_hint = _back_up_each(
        conn, dsn, databases, kind, target, settings, {**base, **common}, pg_dump, pg_restore, watch, result
    )
    if result.failures:
        _raise_failures(result, settings, stopped, last_hint)
    return result


def _back_up_each(
    conn: psycopg.Connection,
    dsn: str | None,
    databases: list[str],
    kind: str,
    target: Path,
    settings: Settings,
    details: dict,
    pg_dump: Path,
    pg_restore: Path,
    watch: _Watch,
    result: BackupResult,
) -> tuple[bool, str | None]:
    """Back up each database in turn into ``result``; after a stop (cancelled, past the deadline) or the loss
    of the metadata connection, the others are not started. (stopped, the hint of the last failure)."""
    last_hint = None
    stopped = False
    for n, database in enumerate(databases):
        watch.what = f'backup of database "{database}"'
        try:
            watch()  # cancelled or past the deadline: start no other database
            result.backups.append(
                _backup_one(
                    conn,
                    dsn,
                    database,
                    kind,
                    target,
                    settings,
                    details,
                    pg_dump,
                    pg_restore,
                    watch,
                )
            )
            result.warnings += result.backups[-1].untrusted
        except BackupFailed as exc:
            result.failures[database] = exc.message
            last_hint = exc.hint
            stopped = isinstance(exc, BackupCancelled)
            if stopped or conn.broken:
                for rest in databases[n + 1 :]:
                    result.failures[rest] = "not started: " + (
                        "the backup was stopped"
                        if stopped
                        else "the connection recording the backups was lost"
                    )
                break
    return stopped, last_hint


def _client_programs(conn: psycopg.Connection) -> tuple[Path, Path, str]:
    """(pg_dump, pg_restore, pg_dump's version) suited to the server; BackupFailed when there is none."""
    server_major = conn.info.server_version // 10000
    bindir = pg_bindir(server_major)
    pg_dump, pg_restore = bindir / "pg_dump", bindir / "pg_restore"
    dump_version = program_version(pg_dump)
    check_pg_dump_version(dump_version, conn.info.server_version, str(pg_dump))
    return pg_dump, pg_restore, dump_version


def _clean_up_before(conn: psycopg.Connection, identity: dict, target: Path, result: BackupResult) -> None:
    """What killed runs left behind: abandoned backups, passfiles, half-restored databases (what could not be
    cleaned up goes to ``result.warnings``)."""
    result.abandoned, result.warnings = _clean_abandoned(conn, identity, target)
    with contextlib.suppress(OSError, BackupFailed):
        sweep_private()  # the passfiles of a run killed outright
    with contextlib.suppress(psycopg.Error):
        _dropped, problems = drop_half_restored(conn)
        result.warnings += problems


def _raise_failures(result: BackupResult, settings: Settings, stopped: bool, last_hint: str | None) -> None:
    """The BackupFailed (BackupCancelled when the backup was stopped) of a run in which some database
    failed, with ``result`` attached."""
    if len(result.failures) == 1 and len(settings.databases) == 1:
        message = next(iter(result.failures.values()))
    else:
        message = "backup failed for " + "; ".join(f"{d}: {e}" for d, e in result.failures.items())
    failure = (BackupCancelled if stopped else BackupFailed)(message, hint=last_hint)
    failure.result = result
    raise failure


_MARK_FAILED = (
    "UPDATE autopilot.backup_metadata SET status = 'failed', finished_at = clock_timestamp(), error = %s "
    "WHERE id = %s AND status IN ('running', 'succeeded')"
)


def _mark_failed(conn: psycopg.Connection, dsn: str | None, backup_id: int, message: str) -> None:
    """Record the failure, unless someone else already did (the row is no longer running/succeeded). When
    the connection is gone, a new one records it."""
    try:
        conn.execute(_MARK_FAILED, [message, backup_id])
        return
    except psycopg.Error:
        if not conn.broken:
            return
    with contextlib.suppress(psycopg.Error, AutopilotError), _metadata_connection(dsn) as other:
        other.execute(_MARK_FAILED, [message, backup_id])


def _changed_underneath(
    conn: psycopg.Connection, backup_id: int, database: str, expected: str
) -> BackupFailed:
    row = conn.execute(
        "SELECT status, error FROM autopilot.backup_metadata WHERE id = %s", [backup_id]
    ).fetchone()
    now = (row[0] + (f" ({row[1]})" if row[1] else "")) if row else "deleted"
    return BackupFailed(
        f'backup #{backup_id} of database "{database}" was changed by someone else while it ran: it is '
        f"{now}, not {expected}; its files were removed",
        hint="Another runner took it for abandoned: the connection that holds a backup's advisory lock must "
        "keep its session (not a pooler in transaction mode). The job is retried.",
    )


def _backup_one(
    conn: psycopg.Connection,
    dsn: str | None,
    database: str,
    kind: str,
    directory: Path,
    settings: Settings,
    details: dict,
    pg_dump: Path,
    pg_restore: Path,
    watch: _Watch,
) -> DatabaseBackup:
    """One database: its ``running`` row inserted and locked, pg_dump, the archive kept, read back and
    recorded ``verified`` (whatever stops that removes its files and marks the row failed), the lock
    released; then retention."""
    fmt = settings.format
    identity = details["recorded_in"]
    backup_id, started_at, archive = _insert_running(conn, database, kind, directory, fmt, details)
    partial, _, manifest, manifest_partial, intent_partial, intent = _leftovers(archive)
    # removed at interpreter exit if still there
    _register_private(partial, manifest_partial, intent_partial, intent)
    secrets: tuple[str, ...] = ()
    report = BackupProgress(
        database, backup_id, kind, "started", expected_bytes=_expected_size(conn, database, fmt)
    )
    try:
        watch.progress(report)
        # the runner's record of the files it is about to make: the cleanup of an abandoned backup deletes
        # only files a record of the runner names (a row alone, which the runner's role can write, is not
        # enough)
        _write_intent(intent, backup_id, database, kind, fmt, archive, started_at, identity)
        meter = DumpMeter(partial, report, watch.progress)
        with libpq_target(dsn, database) as (conninfo, env, secrets):
            dump, dump_seconds = _run_pg_dump(
                pg_dump, conninfo, env, partial, settings, pg_restore, watch, meter
            )
        _check_dump(dump, secrets, database, directory)
        finished_at = _keep_archive(conn, partial, archive, directory, backup_id, database, dump_seconds)
        watch.progress(meter.at(archive_bytes(archive), dump_seconds, "verifying"))
        verification = _verify(archive, pg_restore, dump, watch)
        verified_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        times = (started_at, finished_at, verified_at)
        _record_verified(
            conn, backup_id, database, kind, fmt, archive, manifest, times, verification, details
        )
        _remove(intent)
        _fsync_path(directory)
    except BaseException as exc:
        failure = _record_failure(conn, dsn, exc, backup_id, database, archive, secrets)
        watch.progress(replace(report, phase="failed", error=_failure_text(failure or exc)))
        if failure is None:
            raise
        raise failure from exc
    finally:
        _unregister_private(partial, manifest_partial, intent_partial, intent)
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)])
    watch.progress(
        replace(
            report,
            phase="finished",
            bytes=verification.size_bytes,
            seconds=dump_seconds,
            sha256=verification.sha256,
            verify_seconds=verification.seconds,
        )
    )
    retained = _retention(conn, kind, database, settings.keep[kind], identity, directory)
    return _verified_backup(
        backup_id, database, kind, fmt, archive, manifest, times, dump_seconds, verification, retained
    )


def _failure_text(exc: BaseException) -> str:
    """What stopped a backup, in one line for its progress report."""
    if isinstance(exc, AutopilotError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted ({exc or 'SIGINT'}): pg_dump was stopped, nothing was kept"
    return f"{type(exc).__name__}: {exc}"


def _verified_backup(
    backup_id: int,
    database: str,
    kind: str,
    fmt: str,
    archive: Path,
    manifest: Path,
    times: tuple[datetime, datetime, datetime],
    dump_seconds: float,
    verification: Verification,
    retained: tuple[list[Pruned], list[str], list[str]],
) -> DatabaseBackup:
    """The DatabaseBackup of a backup recorded ``verified``: ``times`` (started_at, finished_at,
    verified_at), ``retained`` what retention did after it (pruned, errors, untrusted)."""
    started_at, finished_at, verified_at = times
    pruned, prune_errors, untrusted = retained
    return DatabaseBackup(
        backup_id,
        database,
        kind,
        fmt,
        archive,
        manifest,
        verification.size_bytes,
        verification.sha256,
        started_at,
        finished_at,
        verified_at,
        dump_seconds,
        verification.seconds,
        pruned,
        prune_errors,
        untrusted,
    )


def _expected_size(conn: psycopg.Connection, database: str, fmt: str) -> int | None:
    """The size of the last verified backup of ``database`` in format ``fmt``: what this one will likely
    come to (an estimate for progress reports; a row's word is good enough for that)."""
    try:
        row = conn.execute(
            "SELECT size_bytes FROM autopilot.backup_metadata WHERE database_name = %s "
            "AND status = 'verified' AND details ->> 'format' = %s AND size_bytes > 0 "
            "ORDER BY finished_at DESC, id DESC LIMIT 1",
            [database, fmt],
        ).fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None


def _insert_running(
    conn: psycopg.Connection, database: str, kind: str, directory: Path, fmt: str, details: dict
) -> tuple[int, datetime, Path]:
    """The ``running`` row of a new backup, locked (its advisory lock held by this session), and the path of
    its archive to be: (id, start, archive). BackupFailed when it cannot be recorded."""
    backup_id = None
    try:
        # one transaction: the row is locked before anyone can see it, so a concurrent cleanup of abandoned
        # backups never takes it for one
        with conn.transaction():
            backup_id, started_at = conn.execute(
                "INSERT INTO autopilot.backup_metadata (kind, database_name, status, details) "
                "VALUES (%s, %s, 'running', %s) RETURNING id, started_at",
                [kind, database, Jsonb(details)],
            ).fetchone()
            conn.execute("SELECT pg_catalog.pg_advisory_lock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)])
            archive = directory / archive_name(database, kind, started_at, backup_id, fmt)
            conn.execute(
                "UPDATE autopilot.backup_metadata SET file_path = %s WHERE id = %s", [str(archive), backup_id]
            )
    except psycopg.Error as exc:
        if backup_id is not None:
            with contextlib.suppress(psycopg.Error):
                conn.execute(
                    "SELECT pg_catalog.pg_advisory_unlock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)]
                )
        raise BackupFailed(f'backup of database "{database}" not started: {translate(exc).message}') from exc
    return backup_id, started_at, archive


def _write_intent(
    intent: Path,
    backup_id: int,
    database: str,
    kind: str,
    fmt: str,
    archive: Path,
    started_at: datetime,
    identity: dict,
) -> None:
    _write_manifest(
        intent,
        {
            "intent_version": 1,
            "backup_id": backup_id,
            "database": database,
            "kind": kind,
            "format": fmt,
            "file": archive.name,
            "started_at": started_at.isoformat(),
            "recorded_in": identity,
            "pid": os.getpid(),
        },
    )


def _run_pg_dump(
    pg_dump: Path,
    conninfo: str,
    env: dict[str, str],
    partial: Path,
    settings: Settings,
    pg_restore: Path,
    watch: _Watch,
    meter: DumpMeter,
) -> tuple[_Dump, float]:
    """pg_dump into ``partial`` (a custom archive read back while it is written, see _dump), its progress
    measured all along (``meter``): its outcome and how long it took."""
    argv = pg_dump_argv(
        pg_dump, conninfo, partial, settings.format, settings.lock_wait_timeout, settings.parallel_jobs
    )

    def poll() -> None:
        watch()
        meter()

    t0 = time.monotonic()
    dump = _dump(argv, env, partial, settings.format, pg_restore, poll)
    return dump, time.monotonic() - t0


def _check_dump(dump: _Dump, secrets: tuple[str, ...], database: str, directory: Path) -> None:
    """BackupFailed with pg_dump's own message (secrets scrubbed) when it failed."""
    stderr = _scrub(dump.stderr, secrets)
    if dump.returncode != 0:
        reason = _first_line(stderr) or f"pg_dump exited with code {dump.returncode}"
        if dump.returncode < 0:
            reason += f" (pg_dump killed by signal {-dump.returncode})"
        raise BackupFailed(
            f'pg_dump of database "{database}" failed: {reason}',
            hint="Nothing was kept; the job is retried. Check the database name (backups.databases), "
            "that the server is up, and the free space in " + str(directory) + ".",
        )


def _keep_archive(
    conn: psycopg.Connection,
    partial: Path,
    archive: Path,
    directory: Path,
    backup_id: int,
    database: str,
    dump_seconds: float,
) -> datetime:
    """fsync the archive, rename it to its final name and fsync the directory; only then is the row
    ``succeeded``. Its finish time."""
    _fsync_tree(partial)
    os.rename(partial, archive)
    _fsync_path(directory)
    finished_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    if not conn.execute(
        "UPDATE autopilot.backup_metadata SET status = 'succeeded', finished_at = %s, "
        "details = details || %s WHERE id = %s AND status = 'running'",
        [finished_at, Jsonb({"dump_seconds": round(dump_seconds, 3)}), backup_id],
    ).rowcount:
        raise _changed_underneath(conn, backup_id, database, "running")
    return finished_at


def _verify(archive: Path, pg_restore: Path, dump: _Dump, watch: _Watch) -> Verification:
    """The read-back done while pg_dump wrote, confirmed on the final file; else a full read-back."""
    if dump.streamed_bytes is not None:
        return _confirm_streamed(archive, pg_restore, dump.streamed_bytes, dump.after_dump_seconds, watch)
    return verify_archive(archive, pg_restore, watch)


def _record_verified(
    conn: psycopg.Connection,
    backup_id: int,
    database: str,
    kind: str,
    fmt: str,
    archive: Path,
    manifest: Path,
    times: tuple[datetime, datetime, datetime],
    verification: Verification,
    details: dict,
) -> None:
    """Write the manifest beside the archive, then mark the row ``verified``. ``times``: (started_at,
    finished_at, verified_at)."""
    started_at, finished_at, verified_at = times
    body = {
        "manifest_version": 1,
        "backup_id": backup_id,
        "database": database,
        "kind": kind,
        "format": fmt,
        "file": archive.name,
        "size_bytes": verification.size_bytes,
        "sha256": verification.sha256,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "verified_at": verified_at.isoformat(),
        "verification": verification.message,
        "recorded_in": details["recorded_in"],
        **{k: v for k, v in details.items() if k not in ("pg_dump", "recorded_in", "format")},
    }
    if verification.files is not None:
        body["files"] = verification.files
    _write_manifest(manifest, body)
    if not conn.execute(
        "UPDATE autopilot.backup_metadata SET status = 'verified', size_bytes = %s, sha256 = %s, "
        "verified_at = %s, verification = %s, details = (details - 'progress') || %s "
        "WHERE id = %s AND status = 'succeeded'",
        [
            verification.size_bytes,
            verification.sha256,
            verified_at,
            verification.message,
            Jsonb({"verify_seconds": round(verification.seconds, 3), "manifest": str(manifest)}),
            backup_id,
        ],
    ).rowcount:
        raise _changed_underneath(conn, backup_id, database, "succeeded")


def _record_failure(
    conn: psycopg.Connection,
    dsn: str | None,
    exc: BaseException,
    backup_id: int,
    database: str,
    archive: Path,
    secrets: tuple[str, ...],
) -> BackupFailed | None:
    """After ``exc`` stopped a backup: remove its files, mark its row failed (with the secrets scrubbed from
    the message). The BackupFailed to raise instead of ``exc``, or None to raise ``exc`` itself (a
    BackupFailed gets the recorded message)."""
    left = []
    for leftover in _leftovers(archive):
        try:
            _remove(leftover)
        except OSError as err:
            left.append(f"{err.filename or leftover} ({err.strerror or err})")
    if isinstance(exc, KeyboardInterrupt):
        message = (
            f'backup of database "{database}" interrupted ({exc or "SIGINT"}): pg_dump was stopped, '
            "nothing was kept"
        )
    elif isinstance(exc, AutopilotError):
        message = exc.message
    else:
        message = f"{type(exc).__name__}: {exc}"
    if left:
        message += "; and could not remove " + ", ".join(left)
    message = _scrub(message, secrets)
    _mark_failed(conn, dsn, backup_id, message)
    if isinstance(exc, BackupFailed):
        exc.message = message
        exc.args = (message,)
        return None
    if isinstance(exc, OSError | AutopilotError | psycopg.Error):
        return BackupFailed(f'backup of database "{database}" failed: {message}')
    return None


def _retention(
    conn: psycopg.Connection, kind: str, database: str, keep: int, identity: dict, directory: Path
) -> tuple[list[Pruned], list[str], list[str]]:
    """prune, after a verified backup: a database error is reported in the errors, not raised."""
    try:
        return prune(conn, kind, database, keep, identity, directory)
    except psycopg.Error as exc:  # the backup itself is verified: report, do not fail it
        return [], [f"retention of {kind} backups of {database} not applied: {translate(exc).message}"], []
