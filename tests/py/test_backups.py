"""pg_dump backups: written atomically and privately, verified by reading them back, pruned per kind only
after a newer backup is verified, failing cleanly, restorable row for row; and `status` flags them.

Everything runs the real pg_dump / pg_restore against the session's real server.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import stat
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from helpers import PG_BINDIR, flat
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sample_rows import fill, table_digest, user_tables

from pg_autopilot import backups
from pg_autopilot.cluster import free_port
from pg_autopilot.errors import BackupFailed, RestoreFailed

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
    assert manifest["server_version"].startswith("15.") and manifest["pg_dump_version"].startswith("15.")
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
        restored = backups.restore_backup(installed_db.dsn, None, into, jobs=2)
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
        backups.restore_backup(installed_db.dsn, b.id, f"ap_never_{uuid.uuid4().hex[:6]}")


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


def test_abandoned_backup_is_cleaned_up_by_the_next_one(installed_db, tmp_path):
    """A runner killed mid-backup leaves a running row and a .partial; the next backup (whose advisory lock
    check finds nobody holding the row) marks it failed and removes the leftover."""
    target = tmp_path / "b"
    target.mkdir(mode=0o700)
    leftover = target / "killed.dump"
    Path(str(leftover) + ".partial").write_bytes(b"PGDMP half an archive")
    with installed_db.connect() as conn:
        details = backups._identity(conn)
        (killed,) = conn.execute(
            "INSERT INTO autopilot.backup_metadata (kind, database_name, file_path, details) "
            "VALUES ('hourly', current_database(), %s, jsonb_build_object('recorded_in', %s::jsonb)) "
            "RETURNING id",
            [str(leftover), json.dumps(details)],
        ).fetchone()
    result = backups.run_backup(installed_db.dsn, "hourly", directory=str(target))
    assert result.abandoned == [killed]
    assert not Path(str(leftover) + ".partial").exists()
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
    monkeypatch.setattr(backups, "child_setup", _small_disk)
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

    with backups.libpq_target(dsn, installed_db.name) as (conninfo, env, password):
        argv = backups.pg_dump_argv(
            PG_BINDIR / "pg_dump", conninfo, tmp_path / "x", "custom", backups.timedelta(1), 1
        )
        assert password == secret
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
        done = autopilot("runner", "restore", "--into", into, "--dsn", db.dsn)
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
            backups.restore_backup(db.dsn, backup_id, db.name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(into)))


# -- status ----------------------------------------------------------------------------------------


def test_status_flags_missing_and_overdue_backups(installed_db, tmp_path, autopilot):
    def status_json() -> dict:
        done = autopilot("status", "--json", "--dsn", installed_db.dsn)
        assert done.exit_code == 0, done.output
        return json.loads(done.output)["backups"]

    missing = status_json()
    assert missing["overdue"] is True
    assert missing["databases"][0]["last_verified_at"] is None
    table = autopilot("status", "--dsn", installed_db.dsn)
    assert f"backups of {installed_db.name}: OVERDUE no verified backup" in flat(table.output)

    b = backups.run_backup(installed_db.dsn, "hourly", directory=str(tmp_path / "b")).backups[0]
    fresh = status_json()
    assert fresh["overdue"] is False and fresh["databases"][0]["last_verified_id"] == b.id
    assert "OVERDUE no verified" not in flat(autopilot("status", "--dsn", installed_db.dsn).output)

    # three hours later (the row aged), past backups.overdue_after (2 hours)
    with installed_db.connect() as conn:
        conn.execute(
            "UPDATE autopilot.backup_metadata SET started_at = started_at - interval '3 hours', "
            "finished_at = finished_at - interval '3 hours', verified_at = verified_at - interval '3 hours'"
        )
    old = status_json()
    assert old["overdue"] is True and old["databases"][0]["age"] > 3 * 3600 - 60
    assert f"backups of {installed_db.name}: OVERDUE last verified 3h ago" in flat(
        autopilot("status", "--dsn", installed_db.dsn).output
    )
