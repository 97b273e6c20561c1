"""pg_dump backups: written atomically and privately, verified by reading them back, pruned per kind only
after a newer backup is verified, failing cleanly, restorable row for row; and `status` flags them.

Everything runs the real pg_dump / pg_restore against the session's real server.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from helpers import PG_BINDIR, assert_status_exit, autopilot_argv, flat, wait_for
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sample_rows import fill, table_digest, user_tables

from pg_autopilot import backups
from pg_autopilot.errors import BackupFailed, RestoreFailed
from pg_autopilot.testing import free_port
from pg_autopilot.workers import JobContext
from pg_autopilot.workers.backup import backup as backup_worker

QUEUES = ("agent_knowledge_pending", "performance_metrics_pending")


def set_setting(db, name: str, value: str) -> None:
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_setting(%s, %s)", [name, value])


def rows(db, query: str, params: list | None = None) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute(query, params or []).fetchall()


def add_user_table(db, n: int = 2000) -> None:
    with db.connect() as conn:
        conn.execute(
            "CREATE TABLE public.orders (id bigint PRIMARY KEY, customer text NOT NULL, "
            "total numeric(12, 2), placed_at timestamptz, note text)"
        )
        conn.execute(
            "INSERT INTO public.orders SELECT g, 'customer ' || g %% 97, g * 1.25, "
            "'2026-01-01'::timestamptz + g * interval '1 minute', md5(g::text) FROM generate_series(1, %s) g",
            [n],
        )


def age_backups(db, ids: list[int], hours: float) -> None:
    """As if ``hours`` had passed since these backups were taken: their rows' times and their manifests'
    moved back alike (the runner trusts a row only when its times agree with its manifest's)."""
    with db.connect() as conn:
        moved = conn.execute(
            "UPDATE autopilot.backup_metadata SET started_at = started_at - make_interval(secs => %(s)s), "
            "finished_at = finished_at - make_interval(secs => %(s)s), "
            "verified_at = verified_at - make_interval(secs => %(s)s) "
            "WHERE id = ANY(%(ids)s) RETURNING details ->> 'manifest'",
            {"s": hours * 3600, "ids": ids},
        ).fetchall()
    for (manifest,) in moved:
        body = json.loads(Path(manifest).read_text())
        for key in ("started_at", "finished_at", "verified_at"):
            body[key] = (datetime.fromisoformat(body[key]) - timedelta(hours=hours)).isoformat()
        Path(manifest).write_text(json.dumps(body))


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the success path ------------------------------------------------------------------------------


def test_backup_is_private_complete_and_verified(installed_db, tmp_path):
    add_user_table(installed_db)
    target = tmp_path / "backups"
    result = backups.run_backup(installed_db.dsn, "manual", directory=str(target))

    assert len(result.backups) == 1 and not result.failures
    b = result.backups[0]
    assert b.database == installed_db.name
    assert mode(target) == 0o700
    assert mode(b.path) == 0o600 and mode(b.manifest) == 0o600
    assert files_in(target) == sorted([b.path.name, b.manifest.name])  # no .partial left
    data = b.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == b.sha256 and len(data) == b.size_bytes

    manifest = json.loads(b.manifest.read_text())
    assert manifest["database"] == installed_db.name and manifest["kind"] == "manual"
    assert manifest["format"] == "custom" and manifest["file"] == b.path.name
    assert manifest["sha256"] == b.sha256 and manifest["size_bytes"] == len(data)
    major = installed_db.scalar("SELECT current_setting('server_version_num')::int / 10000")
    assert manifest["server_version"].startswith(f"{major}.")
    assert manifest["pg_dump_version"].startswith(f"{major}.")  # the server's own pg_dump
    assert manifest["autopilot_version"] and manifest["pg_autopilot_version"]
    assert manifest["started_at"] <= manifest["finished_at"] <= manifest["verified_at"]

    (row,) = rows(
        installed_db,
        "SELECT status, kind, database_name, file_path, size_bytes, sha256, verified_at IS NOT NULL, "
        "verification, error FROM autopilot.backup_metadata",
    )
    assert row == (
        "verified",
        "manual",
        installed_db.name,
        str(b.path),
        len(data),
        b.sha256,
        True,
        row[7],
        None,
    )
    assert "read every data block" in row[7] and "as pg_dump wrote it" in row[7]  # read back while written
    # the archive is a real pg_dump archive holding the user table's data
    listing = subprocess.run(
        [str(PG_BINDIR / "pg_restore"), "--list", str(b.path)], capture_output=True, text=True
    )
    assert "TABLE DATA public orders" in listing.stdout


def test_directory_format_with_parallel_jobs(installed_db, admin_dsn, tmp_path):
    add_user_table(installed_db)
    set_setting(installed_db, "backups.format", "directory")
    set_setting(installed_db, "backups.parallel_jobs", "2")
    result = backups.run_backup(installed_db.dsn, "hourly", directory=str(tmp_path / "b"))
    b = result.backups[0]
    assert b.path.is_dir() and mode(b.path) == 0o700
    inner = [p for p in b.path.rglob("*") if p.is_file()]
    assert inner and all(mode(p) == 0o600 for p in inner)
    manifest = json.loads(b.manifest.read_text())
    assert manifest["files"] == {
        str(p.relative_to(b.path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in inner
    }
    assert manifest["sha256"] == backups.directory_digest(manifest["files"]) == b.sha256
    assert rows(installed_db, "SELECT status FROM autopilot.backup_metadata") == [("verified",)]

    orders = "SELECT md5(string_agg(o::text, '|' ORDER BY id)) FROM public.orders AS o"
    into = f"ap_restored_{uuid.uuid4().hex[:8]}"
    try:
        restored = backups.restore_backup(installed_db.dsn, None, into, jobs=2, directory=tmp_path / "b")
        assert restored.backup_id == b.id and restored.sha256 == b.sha256
        with psycopg.connect(make_conninfo(admin_dsn, dbname=into)) as conn:
            assert conn.execute(orders).fetchone() == tuple(rows(installed_db, orders)[0])
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(into)))


# -- verification ----------------------------------------------------------------------------------


def test_truncated_archive_fails_verification(installed_db, tmp_path):
    add_user_table(installed_db, 20_000)
    b = backups.run_backup(installed_db.dsn, directory=str(tmp_path / "b")).backups[0]
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(b.path.read_bytes()[: b.size_bytes - 100])

    # pg_restore --list reads only the table of contents: it passes the truncated archive...
    listing = subprocess.run([str(PG_BINDIR / "pg_restore"), "--list", str(truncated)], capture_output=True)
    assert listing.returncode == 0
    # ...reading the whole archive back does not
    with pytest.raises(BackupFailed, match=r"verification failed.*end of file"):
        backups.verify_archive(truncated, PG_BINDIR / "pg_restore")
    assert backups.verify_archive(b.path, PG_BINDIR / "pg_restore").sha256 == b.sha256

    # and a recorded backup that was damaged afterwards is refused by restore (its sha256 no longer matches)
    os.truncate(b.path, b.size_bytes - 100)
    with pytest.raises(RestoreFailed, match="does not match its recorded sha256"):
        backups.restore_backup(
            installed_db.dsn, b.id, f"ap_never_{uuid.uuid4().hex[:6]}", directory=tmp_path / "b"
        )


# -- retention -------------------------------------------------------------------------------------


def test_retention_keeps_n_verified_and_prunes_only_after_a_new_one(installed_db, tmp_path):
    target = tmp_path / "b"
    set_setting(installed_db, "backups.hourly_keep", "2")
    first = backups.run_backup(installed_db.dsn, "hourly", directory=str(target)).backups[0]
    second = backups.run_backup(installed_db.dsn, "hourly", directory=str(target)).backups[0]
    assert not first.pruned and not second.pruned
    manual = backups.run_backup(installed_db.dsn, "manual", directory=str(target)).backups[0]
    assert not manual.pruned  # another kind counts against its own retention

    # a failed hourly backup prunes nothing: still two verified hourly backups
    set_setting(installed_db, "backups.databases", "ap_no_such_database")
    with pytest.raises(BackupFailed):
        backups.run_backup(installed_db.dsn, "hourly", directory=str(target))
    set_setting(installed_db, "backups.databases", "")
    assert first.path.exists() and second.path.exists()
    assert rows(installed_db, "SELECT count(*) FROM autopilot.backup_metadata WHERE status = 'verified'") == [
        (3,)
    ]

    third = backups.run_backup(installed_db.dsn, "hourly", directory=str(target)).backups[0]
    assert [p.id for p in third.pruned] == [first.id] and third.pruned[0].files_removed
    assert not first.path.exists() and not first.manifest.exists()
    assert sorted(files_in(target)) == sorted(
        p.name for b in (second, manual, third) for p in (b.path, b.manifest)
    )
    statuses = dict(rows(installed_db, "SELECT id, status FROM autopilot.backup_metadata"))
    assert statuses[first.id] == "pruned"
    assert [statuses[b.id] for b in (second, third, manual)] == ["verified"] * 3
    assert sorted(statuses.values()).count("failed") == 1


def abandoned_row(db, target: Path, *, intent: bool = True) -> tuple[int, Path]:
    """What a runner killed mid-dump leaves: a running row, a .partial named as the runner names it and
    (unless ``intent`` is false) the runner's intent record beside it."""
    with db.connect() as conn:
        identity = backups._identity(conn)
        killed, started_at = conn.execute(
            "INSERT INTO autopilot.backup_metadata (kind, database_name, details) "
            "VALUES ('hourly', current_database(), jsonb_build_object('recorded_in', %s::jsonb)) "
            "RETURNING id, started_at",
            [json.dumps(identity)],
        ).fetchone()
        archive = target / backups.archive_name(db.name, "hourly", started_at, killed, "custom")
        conn.execute(
            "UPDATE autopilot.backup_metadata SET file_path = %s WHERE id = %s", [str(archive), killed]
        )
    Path(str(archive) + ".partial").write_bytes(b"PGDMP half an archive")
    if intent:
        record = {"backup_id": killed, "database": db.name, "kind": "hourly", "file": archive.name}
        backups._write_manifest(backups.intent_path(archive), {**record, "recorded_in": identity})
    return killed, archive


def test_abandoned_backup_is_cleaned_up_by_the_next_one(installed_db, tmp_path):
    """A runner killed mid-backup leaves a running row and a .partial; the next backup (whose advisory lock
    check finds nobody holding the row) marks it failed and removes the leftover."""
    target = tmp_path / "b"
    target.mkdir(mode=0o700)
    killed, leftover = abandoned_row(installed_db, target)
    result = backups.run_backup(installed_db.dsn, "hourly", directory=str(target))
    assert result.abandoned == [killed] and not result.warnings
    assert not Path(str(leftover) + ".partial").exists()
    assert not backups.intent_path(leftover).exists()
    assert rows(
        installed_db,
        "SELECT status, error LIKE 'abandoned%%' FROM autopilot.backup_metadata WHERE id = %s",
        [killed],
    ) == [("failed", True)]


# -- failures --------------------------------------------------------------------------------------


def assert_failed_cleanly(db, target: Path, fragment: str) -> None:
    assert not any(p.name.endswith((".dump", ".dir", ".json", ".partial")) for p in target.iterdir())
    assert list(target.iterdir()) == []
    (row,) = rows(db, "SELECT status, error, sha256, verified_at FROM autopilot.backup_metadata")
    assert row[0] == "failed" and fragment in row[1] and row[2] is None and row[3] is None


def test_wrong_database_fails_cleanly(installed_db, tmp_path, autopilot):
    target = tmp_path / "b"
    set_setting(installed_db, "backups.databases", "ap_no_such_database")
    with pytest.raises(BackupFailed) as caught:
        backups.run_backup(installed_db.dsn, "hourly", directory=str(target))
    assert 'pg_dump of database "ap_no_such_database" failed' in caught.value.message
    assert 'database "ap_no_such_database" does not exist' in caught.value.message  # pg_dump's own words
    assert_failed_cleanly(installed_db, target, "does not exist")

    result = autopilot("runner", "backup", "--directory", str(target), "--dsn", installed_db.dsn)
    assert result.exit_code == 1
    assert 'database "ap_no_such_database" does not exist' in flat(result.output)


def test_server_down_fails_cleanly(tmp_path, admin_dsn):
    target = tmp_path / "b"
    dsn = make_conninfo(admin_dsn, port=str(free_port()))  # nothing listens there
    with pytest.raises(BackupFailed, match="backup not started: cannot connect"):
        backups.run_backup(dsn, "hourly", directory=str(target))
    assert not target.exists()


def _small_disk() -> None:
    """In the pg_dump child: files may not grow past 256 kB, and writing more fails with EFBIG
    (instead of SIGXFSZ killing the process) -- pg_dump meets what a full disk looks like to it."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_disk_full_fails_cleanly(installed_db, tmp_path, monkeypatch):
    with installed_db.connect() as conn:  # about 3 MB of incompressible data
        conn.execute(
            "CREATE TABLE public.blobs AS SELECT g, "
            "decode(string_agg(md5(g::text || i::text), ''), 'hex') AS b "
            "FROM generate_series(1, 3000) g, generate_series(1, 64) i GROUP BY g"
        )
    monkeypatch.setattr(backups.dump, "child_setup", _small_disk)
    target = tmp_path / "b"
    with pytest.raises(BackupFailed, match="could not write to output file: File too large"):
        backups.run_backup(installed_db.dsn, "daily", directory=str(target))
    assert_failed_cleanly(installed_db, target, "could not write to output file")


def test_real_full_disk_fails_cleanly(installed_db, tmp_path):
    """The same on a real 1 MB tmpfs (ENOSPC), where the machine lets us mount one."""
    with installed_db.connect() as conn:
        conn.execute(
            "CREATE TABLE public.blobs AS SELECT g, "
            "decode(string_agg(md5(g::text || i::text), ''), 'hex') AS b "
            "FROM generate_series(1, 3000) g, generate_series(1, 64) i GROUP BY g"
        )
    target = tmp_path / "small"
    target.mkdir(mode=0o700)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(target)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        with pytest.raises(BackupFailed, match="No space left on device"):
            backups.run_backup(installed_db.dsn, "daily", directory=str(target))
        assert_failed_cleanly(installed_db, target, "No space left on device")
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_pg_dump_older_than_the_server_is_refused():
    with pytest.raises(BackupFailed, match="older than the server's major version 16"):
        backups.check_pg_dump_version("15.14", 160002)
    backups.check_pg_dump_version("15.14", 150014)
    backups.check_pg_dump_version("16.1", 150014)  # a newer pg_dump dumps an older server


# -- no password on a command line or in a log -----------------------------------------------------


def test_no_password_in_argv_or_records(installed_db, tmp_path):
    secret = "s3cr:et\\pw" + uuid.uuid4().hex[:6]
    with installed_db.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE CURRENT_USER PASSWORD {}").format(sql.Literal(secret)))
    dsn = make_conninfo(installed_db.dsn, password=secret)

    with backups.libpq_target(dsn, installed_db.name) as (conninfo, env, secrets):
        argv = backups.pg_dump_argv(
            PG_BINDIR / "pg_dump", conninfo, tmp_path / "x", "custom", timedelta(1), 1
        )
        assert secrets == (secret,)
        assert not any(secret in arg for arg in argv)
        assert "password" not in conninfo_to_dict(conninfo)
        assert "PGPASSWORD" not in env
        passfile = Path(env["PGPASSFILE"])
        assert mode(passfile) == 0o600
        assert passfile.read_text() == "*:*:*:*:" + secret.replace("\\", "\\\\").replace(":", "\\:") + "\n"
    assert not passfile.exists()  # removed with its directory

    result = backups.run_backup(dsn, "manual", directory=str(tmp_path / "b"))
    set_setting(installed_db, "backups.databases", "ap_no_such_database")
    with pytest.raises(BackupFailed) as caught:
        backups.run_backup(dsn, "manual", directory=str(tmp_path / "b"))
    assert secret not in caught.value.message
    recorded = rows(installed_db, "SELECT t::text FROM autopilot.backup_metadata AS t")
    assert len(recorded) == 2 and not any(secret in r[0] for r in recorded)
    assert secret not in result.backups[0].manifest.read_text()


# -- restore ---------------------------------------------------------------------------------------


def test_restore_into_a_new_database_keeps_every_row(installed_db, admin_dsn, tmp_path, autopilot):
    db = installed_db
    add_user_table(db)
    with db.connect(autocommit=False) as conn:
        fill(conn, "before")
        tables = user_tables(conn)
        digests = {t: table_digest(conn, t) for t in tables if t not in QUEUES and t != "backup_metadata"}
        metadata_before = conn.execute(
            "SELECT t::text FROM autopilot.backup_metadata AS t ORDER BY id"
        ).fetchall()
        orders = conn.execute(
            "SELECT md5(string_agg(o::text, '|' ORDER BY id)) FROM public.orders AS o"
        ).fetchone()

    done = autopilot("runner", "backup", "--directory", str(tmp_path / "b"), "--dsn", db.dsn)
    assert done.exit_code == 0, done.output
    out = flat(done.output)
    assert "manual backup in" in out and "sha256" in out and "pruned nothing" in out
    (backup_id,) = rows(db, "SELECT id FROM autopilot.backup_metadata WHERE status = 'verified'")[0]

    into = f"ap_restored_{uuid.uuid4().hex[:8]}"
    try:
        done = autopilot(
            "runner", "restore", "--into", into, "--directory", str(tmp_path / "b"), "--dsn", db.dsn
        )
        assert done.exit_code == 0, done.output
        assert f"restored backup #{backup_id}" in flat(done.output)
        with psycopg.connect(make_conninfo(admin_dsn, dbname=into)) as conn:
            assert user_tables(conn) == tables
            restored = {
                t: table_digest(conn, t) for t in tables if t not in QUEUES and t != "backup_metadata"
            }
            assert restored == digests
            assert (
                conn.execute(
                    "SELECT md5(string_agg(o::text, '|' ORDER BY id)) FROM public.orders AS o"
                ).fetchone()
                == orders
            )
            # the dump's snapshot saw the backup's own row while it was running, and every row before it
            metadata = conn.execute(
                "SELECT t::text FROM autopilot.backup_metadata AS t ORDER BY id"
            ).fetchall()
            assert metadata[: len(metadata_before)] == metadata_before
            assert conn.execute(
                "SELECT status FROM autopilot.backup_metadata WHERE id = %s", [backup_id]
            ).fetchone() == ("running",)

        # an existing database is refused, and left alone
        done = autopilot("runner", "restore", "--backup", str(backup_id), "--into", into, "--dsn", db.dsn)
        assert done.exit_code == 1 and "already exists" in flat(done.output)
        with pytest.raises(RestoreFailed, match="already exists"):
            backups.restore_backup(db.dsn, backup_id, db.name, directory=tmp_path / "b")
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(into)))


# -- status ----------------------------------------------------------------------------------------


def test_status_flags_missing_and_overdue_backups(installed_db, tmp_path, autopilot):
    set_setting(installed_db, "backups.directory", str(tmp_path / "b"))

    def status_json() -> dict:
        done = autopilot("status", "--json", "--dsn", installed_db.dsn)
        assert_status_exit(done)
        return json.loads(done.output)["backups"]

    missing = status_json()
    assert missing["overdue"] is True
    assert missing["databases"][0]["last_verified_at"] is None
    table = autopilot("status", "--dsn", installed_db.dsn)
    assert f"backups of {installed_db.name}: OVERDUE no verified backup" in flat(table.output)

    b = backups.run_backup(installed_db.dsn, "hourly").backups[0]
    fresh = status_json()
    assert fresh["overdue"] is False and fresh["databases"][0]["last_verified_id"] == b.id
    assert "OVERDUE no verified" not in flat(autopilot("status", "--dsn", installed_db.dsn).output)

    # three hours later (the row and its manifest aged), past backups.overdue_after (2 hours)
    age_backups(installed_db, [b.id], hours=3)
    old = status_json()
    assert old["overdue"] is True and old["databases"][0]["age"] > 3 * 3600 - 60
    assert f"backups of {installed_db.name}: OVERDUE last verified 3h ago" in flat(
        autopilot("status", "--dsn", installed_db.dsn).output
    )


# -- faults injected with real parts: a stand-in pg_dump, directories nobody may write ------------------


def spy_pg_dump(tmp_path: Path, then: str) -> tuple[Path, Path]:
    """(a bin directory for AUTOPILOT_PG_BINDIR, the directory its pg_dump reports to). That pg_dump writes
    its pid, argv, PGPASSFILE and PGSERVICEFILE to the report directory, then

    - ``hang``: writes the start of an archive to its --file and sleeps (a pg_dump stuck on a lock);
    - ``gate``: waits for the file ``go`` in the report directory, then runs the real pg_dump;
    - ``run``: runs the real pg_dump at once.

    pg_restore is the real one."""
    bindir, spy = tmp_path / "bin", tmp_path / "spy"
    bindir.mkdir()
    spy.mkdir()
    (bindir / "pg_restore").symlink_to(PG_BINDIR / "pg_restore")
    real = PG_BINDIR / "pg_dump"
    started = f"echo $$ > {spy}/pid.tmp && mv {spy}/pid.tmp {spy}/pid"  # the pid stays with exec
    steps = {
        "hang": 'for a in "$@"; do case "$a" in --file=*) printf PGDMP > "${a#--file=}";; esac; done\n'
        f"{started}\nexec sleep 60",
        "gate": f"{started}\n"
        f"i=0; while [ ! -e {spy}/go ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
        f'exec {real} "$@"',
        "run": f'{started}\nexec {real} "$@"',
    }[then]
    script = bindir / "pg_dump"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then exec {real} --version; fi\n'
        f"printf '%s\\n' \"$@\" > {spy}/argv\n"
        f'printf "%s\\n" "$PGPASSFILE" > {spy}/passfile\n'
        f'printf "%s\\n" "$PGSERVICEFILE" > {spy}/servicefile\n'
        f"{steps}\n"
    )
    script.chmod(0o755)
    return bindir, spy


def spied_pid(spy: Path) -> int:
    return wait_for(lambda: (spy / "pid").exists() and int((spy / "pid").read_text()), "pg_dump to start")


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def children_named(name: str) -> list[int]:
    """Live children of this process running ``name``."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            text = stat_file.read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            if comm == name and int(fields[1]) == os.getpid() and fields[0] not in ("Z", "X"):
                found.append(int(stat_file.parent.name))
    return found


class Background(threading.Thread):
    """A call in a thread of its own (as the runner's slot threads run workers)."""

    def __init__(self, function: Callable[[], object]):
        super().__init__(daemon=True)
        self.function, self.value, self.error = function, None, None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.function()
        except BaseException as exc:
            self.error = exc

    def outcome(self, timeout: float = 20) -> object:
        self.join(timeout)
        assert not self.is_alive(), f"still running after {timeout} s"
        return self.error or self.value


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """No entry of ``path`` may be created or deleted: chattr +i for root (whom permissions do not stop),
    chmod 500 for anyone else."""
    if os.geteuid() == 0:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a directory immutable here: {done.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        before = mode(path)
        os.chmod(path, 0o500)
        try:
            yield
        finally:
            os.chmod(path, before)


def job_context(db, job_id: int = 4242, attempt: int = 1, deadline: float = 600) -> JobContext:
    return JobContext(job_id, attempt, "backups", "test-node", db.dsn, time.monotonic() + deadline)


def statuses(db) -> list[tuple]:
    return rows(db, "SELECT id, database_name, status, error FROM autopilot.backup_metadata ORDER BY id")


# -- verification never hangs ----------------------------------------------------------------------


@pytest.mark.parametrize("source", ["missing file", "read error"])
def test_verification_read_error_fails_instead_of_hanging(tmp_path, source):
    """pg_restore reads the archive from a pipe and waits for its end: an error reading the file must close
    the pipe and kill pg_restore, or the verification waits forever."""
    path = tmp_path / "gone.dump" if source == "missing file" else Path("/proc/self/mem")  # EIO at offset 0
    verify = Background(lambda: backups.verify_archive(path, PG_BINDIR / "pg_restore"))
    verify.join(15)
    if verify.is_alive():
        for pid in children_named("pg_restore"):  # unblock the thread before failing
            os.kill(pid, signal.SIGKILL)
        verify.join(5)
        pytest.fail("verify_archive hung on a read error: pg_restore was left waiting for its input")
    error = verify.outcome()
    assert isinstance(error, BackupFailed), error
    assert f"verification failed: cannot read {path} back" in error.message
    assert not children_named("pg_restore")


# -- cancellation, deadline, stop signals, interpreter exit -----------------------------------------


@pytest.mark.parametrize("how", ["cancelled", "deadline"])
def test_backup_worker_stops_pg_dump_when_cancelled_or_late(installed_db, tmp_path, monkeypatch, how):
    bindir, spy = spy_pg_dump(tmp_path, "hang")
    monkeypatch.setenv("AUTOPILOT_PG_BINDIR", str(bindir))
    target = tmp_path / "b"
    set_setting(installed_db, "backups.directory", str(target))
    context = job_context(installed_db, deadline=5 if how == "deadline" else 600)
    run = Background(lambda: backup_worker({"kind": "hourly"}, context))
    pid = spied_pid(spy)
    # pg_dump leads a process group of its own: a Ctrl-C or a stop signal to the runner's group does not
    # reach it, the runner decides
    assert os.getpgid(pid) == pid != os.getpgrp()
    assert [p for p in files_in(target) if p.endswith(".partial")]
    if how == "cancelled":
        context.cancelled.set()

    error = run.outcome(timeout=20)
    assert isinstance(error, BackupFailed), error
    expected = "the runner cancelled the job" if how == "cancelled" else "the job passed its deadline"
    assert expected in error.message and "pg_dump was killed and nothing was kept" in error.message
    wait_for(lambda: not alive(pid), "pg_dump killed")
    assert files_in(target) == []
    ((_, _, status, message),) = statuses(installed_db)
    assert status == "failed" and expected in message


def test_sigterm_to_autopilot_runner_backup_stops_pg_dump(installed_db, tmp_path):
    """A stop signal to the command (systemd stop, kill) ends pg_dump, removes its partial file and records
    the failure, instead of leaving pg_dump running on its own."""
    bindir, spy = spy_pg_dump(tmp_path, "hang")
    target = tmp_path / "b"
    env = {k: v for k, v in os.environ.items() if k != "AUTOPILOT_DSN" and not k.startswith("PG")}
    env["AUTOPILOT_PG_BINDIR"] = str(bindir)
    command = subprocess.Popen(
        [*autopilot_argv(), "runner", "backup", "--directory", str(target), "--dsn", installed_db.dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        pid = spied_pid(spy)
        command.send_signal(signal.SIGTERM)
        _out, err = command.communicate(timeout=30)
    finally:
        if command.poll() is None:
            command.kill()
    assert command.returncode == 1 and "Traceback" not in err
    wait_for(lambda: not alive(pid), "pg_dump stopped with the command")
    assert files_in(target) == []
    ((_, _, status, message),) = statuses(installed_db)
    assert status == "failed" and "interrupted (SIGTERM)" in message


EXITING_RUNNER = """
import sys, threading, time
from pathlib import Path
from pg_autopilot import backups
dsn, directory, pidfile = sys.argv[1:]
threading.Thread(
    target=backups.run_backup, args=(dsn, "manual"), kwargs={"directory": directory}, daemon=True
).start()
deadline = time.monotonic() + 30
while not Path(pidfile).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
# the interpreter exits now, the backup thread still waiting for pg_dump (as a runner past its grace period)
"""


def test_interpreter_exit_kills_pg_dump_and_removes_the_passfile(installed_db, tmp_path):
    bindir, spy = spy_pg_dump(tmp_path, "hang")
    target = tmp_path / "b"
    dsn = make_conninfo(installed_db.dsn, password="not-left-behind")
    env = {**os.environ, "AUTOPILOT_PG_BINDIR": str(bindir)}
    done = subprocess.run(
        [sys.executable, "-c", EXITING_RUNNER, dsn, str(target), str(spy / "pid")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    pid = int((spy / "pid").read_text())
    passfile = Path((spy / "passfile").read_text().strip())
    assert passfile.name == "pgpass"
    wait_for(lambda: not alive(pid), "pg_dump killed at interpreter exit")
    assert not passfile.exists() and not passfile.parent.exists()
    assert files_in(target) == []  # the .partial too
    # the row is left running with its lock gone (unless the thread recorded the failure before the
    # interpreter stopped it): the next backup takes it for abandoned
    ((left, _, status, _),) = statuses(installed_db)
    assert status in ("running", "failed")
    next_one = backups.run_backup(installed_db.dsn, "manual", directory=str(target))
    assert next_one.abandoned == ([left] if status == "running" else [])
    assert dict((i, s) for i, _, s, _ in statuses(installed_db))[left] == "failed"


# -- retries of one job ----------------------------------------------------------------------------


def test_retry_of_a_job_backs_up_only_the_databases_still_missing(installed_db, admin_dsn, tmp_path):
    """One database of two fails: the retries of the same job back up only that one, so retries do not
    take (and prune for) new backups of the healthy database."""
    later = f"ap_later_{uuid.uuid4().hex[:8]}"
    set_setting(installed_db, "backups.databases", f"{installed_db.name},{later}")
    set_setting(installed_db, "backups.hourly_keep", "1")
    set_setting(installed_db, "backups.directory", str(tmp_path / "b"))

    with pytest.raises(BackupFailed) as first:
        backup_worker({"kind": "hourly"}, job_context(installed_db, attempt=1))
    assert f'database "{later}" does not exist' in first.value.message
    (kept,) = first.value.result.backups
    assert kept.database == installed_db.name

    with pytest.raises(BackupFailed) as second:
        backup_worker({"kind": "hourly"}, job_context(installed_db, attempt=2))
    assert second.value.result.backups == [] and second.value.result.skipped == [installed_db.name]
    assert list(second.value.result.failures) == [later]

    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(later)))
        summary = backup_worker({"kind": "hourly"}, job_context(installed_db, attempt=3))
        assert f"verified by an earlier attempt of this job: {installed_db.name}" in summary
        ours = [(d, s) for _, d, s, _ in statuses(installed_db)]
        assert ours == [
            (installed_db.name, "verified"),
            (later, "failed"),
            (later, "failed"),
            (later, "verified"),
        ]
        assert rows(installed_db, "SELECT DISTINCT details ->> 'job_id' FROM autopilot.backup_metadata") == [
            ("4242",)
        ]
        # another job (and `autopilot runner backup`, which has none) backs up every database again
        again = backup_worker({"kind": "hourly"}, job_context(installed_db, job_id=4243))
        assert "already" not in again and "pruned" in again
        cli = backups.run_backup(installed_db.dsn, "hourly")
        assert [b.database for b in cli.backups] == [installed_db.name, later]
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(later)))


# -- file-system errors a DBA can act on -------------------------------------------------------------


def test_unusable_backup_directory_is_an_error_with_a_hint(installed_db, tmp_path, autopilot):
    locked = tmp_path / "locked"
    locked.mkdir()
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o700)
    for target, guarded in ((locked / "backups", locked), (existing, existing)):
        with unwritable(guarded):
            with pytest.raises(BackupFailed) as caught:
                backups.run_backup(installed_db.dsn, "hourly", directory=str(target))
            assert caught.value.message.startswith(f"cannot use the backup directory {target}: ")
            assert "chown" in caught.value.hint and "backups.directory" in caught.value.hint
            done = autopilot("runner", "backup", "--directory", str(target), "--dsn", installed_db.dsn)
        assert done.exit_code == 1
        assert f"error: cannot use the backup directory {target}" in flat(done.output)
        assert "hint: Backups are written as the OS user" in flat(done.output)
    # `autopilot status` can tell why: a failed row for each attempt
    failed = rows(installed_db, "SELECT status, error, database_name FROM autopilot.backup_metadata")
    assert len(failed) == 4
    assert all(s == "failed" and e.startswith("cannot use the backup directory") for s, e, _ in failed)


@contextlib.contextmanager
def undeletable(paths: list[Path]) -> Iterator[None]:
    """These files cannot be deleted (chattr +i; root only: permissions do not stop root), while the directory
    they are in stays writable."""
    if os.geteuid() != 0:
        pytest.skip("making a file undeletable needs root (chattr +i)")
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def test_prune_error_is_reported_without_failing_the_verified_backups(
    installed_db, new_database, tmp_path, autopilot
):
    other = new_database("other")
    set_setting(installed_db, "backups.databases", f"{installed_db.name},{other.name}")
    set_setting(installed_db, "backups.hourly_keep", "1")
    set_setting(installed_db, "backups.directory", str(tmp_path / "b"))
    old = backups.run_backup(installed_db.dsn, "hourly").backups
    assert len(old) == 2

    with undeletable([b.path for b in old]):  # the old backups cannot be deleted
        result = backups.run_backup(installed_db.dsn, "hourly")
        done = autopilot("runner", "backup", "--kind", "hourly", "--dsn", installed_db.dsn)
    # both databases are backed up and verified; the retention problem is reported, not raised
    assert not result.failures and [b.database for b in result.backups] == [installed_db.name, other.name]
    assert not result.pruned and len(result.prune_errors) == 2
    assert all("stays verified" in e for e in result.prune_errors)
    assert done.exit_code == 0, done.output
    assert "warning: cannot delete hourly backup" in flat(done.output)
    status = {i: s for i, _, s, _ in statuses(installed_db)}
    for b in old:
        assert b.path.exists() and b.manifest.exists() and status[b.id] == "verified"

    # deletable again: the next backup prunes them
    latest = backups.run_backup(installed_db.dsn, "hourly")
    assert not latest.prune_errors and not latest.warnings
    assert {p.id for p in latest.pruned} >= {b.id for b in old}
    assert all(p.files_removed for p in latest.pruned)
    for b in old:
        assert not b.path.exists() and not b.manifest.exists()


def test_prune_reports_only_the_files_it_removed(installed_db, tmp_path):
    set_setting(installed_db, "backups.format", "directory")
    set_setting(installed_db, "backups.hourly_keep", "1")
    target = tmp_path / "b"
    first = backups.run_backup(installed_db.dsn, "hourly", directory=str(target)).backups[0]
    inside = sorted(p.name for p in first.path.iterdir())

    with unwritable(first.path):  # the archive's files cannot be deleted
        second = backups.run_backup(installed_db.dsn, "hourly", directory=str(target)).backups[0]
    assert second.pruned == [] and len(second.prune_errors) == 1
    assert f"cannot delete hourly backup #{first.id}" in second.prune_errors[0]
    assert sorted(p.name for p in first.path.iterdir()) == inside and first.manifest.exists()
    assert dict((i, s) for i, _, s, _ in statuses(installed_db))[first.id] == "verified"

    # files already gone (deleted by hand): the record is pruned, and nothing is claimed removed
    shutil.rmtree(first.path)
    first.manifest.unlink()
    third = backups.run_backup(installed_db.dsn, "hourly", directory=str(target)).backups[0]
    assert sorted((p.id, p.files_removed, p.missing) for p in third.pruned) == [
        (first.id, False, True),
        (second.id, True, False),
    ]


# -- the backup's row: locked from its first moment, never overwritten -----------------------------


def test_a_new_backup_row_is_never_visible_unlocked(installed_db, tmp_path):
    """The row is inserted and locked in one transaction: a concurrent backup's cleanup, which takes a
    visible running row whose lock is free for abandoned, can never see it unlocked."""
    with installed_db.connect() as holder:
        next_id = 1 + (
            holder.execute(
                "SELECT pg_sequence_last_value(pg_get_serial_sequence('autopilot.backup_metadata', 'id'))"
            ).fetchone()[0]
            or 0
        )
        key = [backups.LOCK_CLASS, backups._lock_key(next_id)]
        holder.execute("SELECT pg_advisory_lock(%s, %s)", key)  # the backup waits for its row's lock
        run = Background(
            lambda: backups.run_backup(installed_db.dsn, "manual", directory=str(tmp_path / "b"))
        )
        wait_for(
            lambda: holder.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event = 'advisory'"
            ).fetchone()[0],
            "the backup waiting for the lock of its new row",
        )
        visible = holder.execute("SELECT count(*) FROM autopilot.backup_metadata").fetchone()[0]
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", key)
    assert visible == 0
    result = run.outcome()
    assert not isinstance(result, BaseException), result
    assert result.backups[0].id == next_id
    assert [s for _, _, s, _ in statuses(installed_db)] == ["verified"]


def test_a_row_failed_by_someone_else_is_not_turned_verified(installed_db, tmp_path, monkeypatch):
    bindir, spy = spy_pg_dump(tmp_path, "gate")
    monkeypatch.setenv("AUTOPILOT_PG_BINDIR", str(bindir))
    target = tmp_path / "b"
    run = Background(lambda: backups.run_backup(installed_db.dsn, "manual", directory=str(target)))
    spied_pid(spy)
    with installed_db.connect() as conn:  # what a cleanup that took it for abandoned would do
        conn.execute(
            "UPDATE autopilot.backup_metadata SET status = 'failed', error = 'taken for abandoned' "
            "WHERE status = 'running'"
        )
    (spy / "go").touch()
    error = run.outcome()
    assert isinstance(error, BackupFailed), error
    assert "was changed by someone else while it ran: it is failed (taken for abandoned), not running" in (
        error.message
    )
    assert [(s, e) for _, _, s, e in statuses(installed_db)] == [("failed", "taken for abandoned")]
    assert files_in(target) == []


# -- the metadata connection stays alive --------------------------------------------------------------


def test_metadata_connection_has_tcp_keepalives(installed_db):
    for dsn, idle in ((installed_db.dsn, 60), (make_conninfo(installed_db.dsn, keepalives_idle="17"), 17)):
        with backups._metadata_connection(dsn) as conn:
            sock = socket.socket(fileno=os.dup(conn.fileno()))
            try:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == idle
            finally:
                sock.close()  # the duplicate only


def test_losing_the_metadata_connection_stops_the_backup(installed_db, tmp_path, monkeypatch):
    """The metadata connection is touched while pg_dump runs; when it is gone (and the advisory lock with
    it), pg_dump is killed at once instead of running on unguarded, and the failure is recorded."""
    bindir, spy = spy_pg_dump(tmp_path, "hang")
    monkeypatch.setenv("AUTOPILOT_PG_BINDIR", str(bindir))
    monkeypatch.setattr(backups.processes, "TOUCH_INTERVAL", 0.2)
    target = tmp_path / "b"
    run = Background(lambda: backups.run_backup(installed_db.dsn, "manual", directory=str(target)))
    pid = spied_pid(spy)
    touched = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND query = 'SELECT ''autopilot backup running''' AND query_start > now() - interval '1 second'"
    )
    backend = wait_for(
        lambda: installed_db.scalar(touched), "the metadata connection touched while pg_dump runs"
    )
    assert installed_db.scalar("SELECT pg_terminate_backend(%s)", [backend])

    error = run.outcome()
    assert isinstance(error, BackupFailed), error
    assert "lost the connection to the database that records it" in error.message
    wait_for(lambda: not alive(pid), "pg_dump killed")
    assert files_in(target) == []
    ((_, _, status, message),) = statuses(installed_db)  # recorded through a new connection
    assert status == "failed" and "lost the connection" in message


# -- secrets ---------------------------------------------------------------------------------------


def test_no_secret_of_the_dsn_on_pg_dumps_command_line(installed_db, tmp_path, monkeypatch):
    bindir, spy = spy_pg_dump(tmp_path, "run")
    monkeypatch.setenv("AUTOPILOT_PG_BINDIR", str(bindir))
    tag = uuid.uuid4().hex[:8]
    password, sslpassword, in_options = f"{tag}-pw", f"{tag}-sslpw", f"{tag}-opt"
    dsn = make_conninfo(
        installed_db.dsn,
        password=password,
        sslpassword=sslpassword,
        options=f"-c autopilot.note={in_options}",
    )
    result = backups.run_backup(dsn, "manual", directory=str(tmp_path / "b"))
    assert result.backups and not result.failures

    argv = (spy / "argv").read_text()
    for secret in (password, sslpassword, in_options):
        assert secret not in argv
    assert "service=autopilot-backup" in argv  # sslpassword came from a private service file
    for name in ("passfile", "servicefile"):
        private = Path((spy / name).read_text().strip())
        assert private.name in ("pgpass", "pg_service.conf") and not private.parent.exists()

    # with a service of its own in the DSN, sslpassword has nowhere to go but the command line: refused
    with (
        pytest.raises(BackupFailed, match="sslpassword cannot reach pg_dump") as caught,
        backups.libpq_target(make_conninfo(dsn, service="elsewhere"), installed_db.name),
    ):
        pass
    assert sslpassword not in caught.value.message
    recorded = rows(installed_db, "SELECT t::text FROM autopilot.backup_metadata AS t")
    assert not any(secret in r[0] for r in recorded for secret in (password, sslpassword))


def test_job_context_repr_hides_the_dsn():
    context = JobContext(7, 1, "backups", "node", "host=db password=hunter2", 0.0)
    assert "hunter2" not in repr(context) and "job_id=7" in repr(context)
