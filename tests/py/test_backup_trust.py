"""The runner trusts only what it can check (issue 9): it deletes only files it made, retention, status and
restore ignore forged backup rows, a restore interrupted by a server restart leaves no half-restored database
behind, a runner killed outright leaves neither pg_dump nor its passfile behind, and the default backup (of
the database pg_cron lives in) restores into a copy on the same server.

Real pg_dump / pg_restore, real servers; rows are forged the way the runner's database role could.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import Database
from helpers import autopilot_argv, flat, wait_for
from psycopg import sql
from psycopg.conninfo import make_conninfo
from test_backups import (
    Background,
    add_user_table,
    age_backups,
    alive,
    files_in,
    rows,
    set_setting,
    statuses,
)

from pg_autopilot import backups
from pg_autopilot.errors import BackupFailed, RestoreFailed
from pg_autopilot.testing import Cluster
from pg_autopilot.workers import JobContext
from pg_autopilot.workers.backup import backup as backup_worker


def identity_of(db) -> dict:
    with db.connect() as conn:
        return backups._identity(conn)


def forge(db, *, status: str, file_path: str, kind: str = "hourly", **columns) -> int:
    """A backup_metadata row as the runner's role can insert one: any status, path, times, sha256."""
    details = {"recorded_in": identity_of(db), **columns.pop("details", {})}
    names = ["kind", "database_name", "status", "file_path", "details", *columns]
    values = [kind, db.name, status, file_path, json.dumps(details), *columns.values()]
    with db.connect() as conn:
        return conn.execute(
            sql.SQL("INSERT INTO autopilot.backup_metadata ({}) VALUES ({}) RETURNING id").format(
                sql.SQL(", ").join(map(sql.Identifier, names)),
                sql.SQL(", ").join([sql.Placeholder()] * len(names)),
            ),
            values,
        ).fetchone()[0]


def job_context(db) -> JobContext:
    return JobContext(4242, 1, "backups", "test-node", db.dsn, time.monotonic() + 600)


# -- finding 2: the runner deletes only files it made -------------------------------------------------


def test_abandoned_rows_never_delete_what_the_runner_did_not_make(installed_db, tmp_path):
    """Running rows whose lock is free are cleaned up by the next backup; a forged one pointing anywhere
    (outside the directory, through '..' or a symbolic link, or at a file in it the runner has no record of)
    deletes nothing: reported, left on disk, the row marked failed."""
    target = tmp_path / "b"
    target.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    (victim / "inner").mkdir(parents=True)
    (victim / "inner" / "data").write_text("precious")
    (victim / "file").write_text("precious")
    (target / "escape").symlink_to(victim)
    # a file in the directory, named as the runner would name the archive of a row, that it did not make
    with installed_db.connect() as conn:
        next_id = 1 + (
            conn.execute(
                "SELECT pg_sequence_last_value(pg_get_serial_sequence('autopilot.backup_metadata', 'id'))"
            ).fetchone()[0]
            or 0
        )
    named = f"{installed_db.name}-hourly-20260101T000000Z-"  # as the runner names the archive of row n
    elsewhere = victim / f"{named}{next_id + 4}.dump"
    elsewhere.write_text("precious")
    through_link = victim / f"{named}{next_id + 5}.dump"
    through_link.write_text("precious")
    stranger = target / f"{named}{next_id + 6}.dump"
    stranger.write_text("not the runner's")

    forged = [
        forge(installed_db, status="running", file_path=str(victim)),
        forge(installed_db, status="running", file_path=str(victim / "file")),
        forge(installed_db, status="succeeded", file_path=f"{target}/../victim"),
        forge(installed_db, status="running", file_path=str(target / "escape" / "inner")),
        forge(installed_db, status="running", file_path=str(elsewhere)),
        forge(installed_db, status="running", file_path=str(target / "escape" / through_link.name)),
        forge(installed_db, status="running", file_path=str(stranger)),
    ]
    assert forged[-1] == next_id + 6

    result = backups.run_backup(installed_db.dsn, "hourly", directory=str(target))
    assert len(result.backups) == 1 and not result.failures
    assert sorted(result.abandoned) == sorted(forged)  # marked failed, nothing deleted
    assert (victim / "inner" / "data").read_text() == "precious" and (victim / "file").exists()
    assert elsewhere.exists() and through_link.exists()
    assert stranger.read_text() == "not the runner's" and (target / "escape").is_symlink()
    assert len(result.warnings) == len(forged)
    assert all("not removing" in w for w in result.warnings)
    assert all("is not named as the runner names" in result.warnings[i] for i in (0, 1, 3))
    assert "is not an absolute path without '..'" in result.warnings[2]
    assert all("is not in the backup directory" in w for w in result.warnings[4:6])
    assert "no intent record of the runner names them" in result.warnings[6]
    assert "not removing" in result.summary()  # what the runner logs and records as the job's message
    errors = dict(
        rows(installed_db, "SELECT id, error FROM autopilot.backup_metadata WHERE status = 'failed'")
    )
    assert all("left on disk" in errors[i] for i in forged)

    # the runner's worker reports it too (its summary is the job's recorded message)
    forge(installed_db, status="running", file_path=str(victim))
    set_setting(installed_db, "backups.directory", str(target))
    summary = backup_worker({"kind": "manual"}, job_context(installed_db))
    assert "not removing" in summary and (victim / "file").exists()


# -- finding 3: forged verified rows -----------------------------------------------------------------


def test_forged_verified_rows_count_for_nothing(installed_db, tmp_path, autopilot):
    """Ten forged `verified` rows ten years ahead: retention neither counts nor deletes them and prunes only
    the genuine backup beyond backups.hourly_keep; status still flags the backups as overdue; restore picks
    the newest genuine backup and refuses a forged one."""
    target = tmp_path / "b"
    set_setting(installed_db, "backups.directory", str(target))
    set_setting(installed_db, "backups.hourly_keep", "2")
    g1 = backups.run_backup(installed_db.dsn, "hourly").backups[0]
    g2 = backups.run_backup(installed_db.dsn, "hourly").backups[0]
    outside = tmp_path / "elsewhere.dump"
    outside.write_bytes(g1.path.read_bytes())

    future = "now() + interval '10 years'"
    shapes = [
        str(g1.path),  # a genuine archive, under another row's id
        str(g2.path),
        str(outside),
        f"{target}/../elsewhere.dump",
        str(target / "whatever.dump"),
    ]
    forged = []
    with installed_db.connect() as conn:
        for n in range(10):
            forged.append(
                conn.execute(
                    "INSERT INTO autopilot.backup_metadata (kind, database_name, status, file_path, sha256, "
                    "size_bytes, started_at, finished_at, verified_at, details) "
                    f"VALUES ('hourly', current_database(), 'verified', %s, %s, %s, {future}, {future}, "
                    f"{future}, jsonb_build_object('recorded_in', %s::jsonb)) RETURNING id",
                    [
                        shapes[n % len(shapes)],
                        g1.sha256,
                        g1.size_bytes,
                        json.dumps(identity_of(installed_db)),
                    ],
                ).fetchone()[0]
            )
        # and one forged in the present, named as the runner would name its archive, without a manifest
        present = backups.archive_name(installed_db.name, "hourly", g2.started_at, max(forged) + 1, "custom")
        forged.append(
            forge(
                installed_db,
                status="verified",
                file_path=str(target / present),
                sha256=g1.sha256,
                size_bytes=g1.size_bytes,
                started_at=g2.started_at,
                finished_at=g2.finished_at,
                verified_at=g2.verified_at,
            )
        )
        assert forged[-1] == max(forged[:-1]) + 1
    (target / present).write_bytes(g1.path.read_bytes())  # even a real archive there: no manifest of its own

    # status: the forged rows do not make the backups look fresh
    done = autopilot("status", "--json", "--dsn", installed_db.dsn)
    status = json.loads(done.output)["backups"]["databases"][0]
    assert status["last_verified_id"] == g2.id and len(status["untrusted"]) == 11
    assert "in the future" in status["untrusted"][0]

    g3 = backups.run_backup(installed_db.dsn, "hourly").backups[0]
    assert [p.id for p in g3.pruned] == [g1.id]  # only the genuine one beyond the two newest genuine ones
    assert g2.path.exists() and g3.path.exists() and not g1.path.exists()
    assert outside.exists() and (target / present).exists()
    assert len(g3.untrusted) == 11 and all("is not trusted" in u for u in g3.untrusted)
    by_id = dict((i, s) for i, _, s, _ in statuses(installed_db))
    assert all(by_id[i] == "verified" for i in forged)  # not pruned (and nothing of theirs deleted)
    assert by_id[g2.id] == by_id[g3.id] == "verified" and by_id[g1.id] == "pruned"

    # status: three hours later the genuine backups are overdue, whatever the forged rows say
    age_backups(installed_db, [g2.id, g3.id], hours=3)
    done = autopilot("status", "--dsn", installed_db.dsn)
    assert f"backups of {installed_db.name}: OVERDUE last verified 3h ago (#{g3.id}" in flat(done.output)
    assert "not trusted, not counted" in flat(done.output)

    # restore picks the newest genuine backup, and refuses a forged one
    into = f"ap_restored_{uuid.uuid4().hex[:8]}"
    try:
        restored = backups.restore_backup(installed_db.dsn, None, into)
        assert restored.backup_id == g3.id and len(restored.skipped) == 11
        for forged_id in (forged[0], forged[-1]):
            with pytest.raises(RestoreFailed, match=f"backup #{forged_id} cannot be restored"):
                backups.restore_backup(installed_db.dsn, forged_id, into + "x")
    finally:
        drop_database(installed_db.dsn, into)


def test_genuine_rows_changed_by_the_runners_role_destroy_nothing(installed_db, tmp_path):
    """The runner's role can UPDATE genuine rows too: an old backup moved to the present (to be counted as
    the newest) is not trusted, so it cannot push the newest out; a verified backup turned back to `running`
    is not taken for an abandoned one (its intent record is gone, its manifest is not enough)."""
    set_setting(installed_db, "backups.directory", str(tmp_path / "b"))
    set_setting(installed_db, "backups.hourly_keep", "1")
    old = backups.run_backup(installed_db.dsn, "hourly").backups[0]
    age_backups(installed_db, [old.id], hours=5)
    kept = backups.run_backup(installed_db.dsn, "manual").backups[0]
    with installed_db.connect() as conn:
        conn.execute(
            "UPDATE autopilot.backup_metadata SET finished_at = now(), verified_at = now() WHERE id = %s",
            [old.id],
        )
        conn.execute("UPDATE autopilot.backup_metadata SET status = 'running' WHERE id = %s", [kept.id])
    new = backups.run_backup(installed_db.dsn, "hourly")
    assert new.backups[0].pruned == []  # the moved row neither counts nor is deleted
    assert any(f"#{old.id}" in w and "time differs from its manifest's" in w for w in new.warnings)
    assert new.abandoned == [kept.id] and kept.path.exists() and kept.manifest.exists()
    assert any(f"#{kept.id}" in w and "no intent record" in w for w in new.warnings)
    assert old.path.exists() and new.backups[0].path.exists()


def test_a_tampered_archive_or_manifest_is_not_trusted(installed_db, tmp_path):
    target = tmp_path / "b"
    set_setting(installed_db, "backups.directory", str(target))
    b = backups.run_backup(installed_db.dsn, "hourly").backups[0]
    # the row changed (the runner's role can): its sha256 no longer matches the manifest
    with installed_db.connect() as conn:
        conn.execute("UPDATE autopilot.backup_metadata SET sha256 = repeat('0', 64) WHERE id = %s", [b.id])
    with pytest.raises(RestoreFailed, match="does not name this backup, its sha256"):
        backups.restore_backup(installed_db.dsn, b.id, f"ap_never_{uuid.uuid4().hex[:6]}")
    # the archive replaced by a symbolic link
    with installed_db.connect() as conn:
        conn.execute("UPDATE autopilot.backup_metadata SET sha256 = %s WHERE id = %s", [b.sha256, b.id])
    moved = tmp_path / "moved.dump"
    b.path.rename(moved)
    b.path.symlink_to(moved)
    with pytest.raises(RestoreFailed, match="is a symbolic link"):
        backups.restore_backup(installed_db.dsn, b.id, f"ap_never_{uuid.uuid4().hex[:6]}")


# -- finding 6: SIGKILL of `autopilot runner backup` -----------------------------------------------------


def children_of(pid: int, name: str) -> list[int]:
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            text = stat_file.read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            if comm == name and int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                found.append(int(stat_file.parent.name))
    return found


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_sigkill_of_runner_backup_kills_pg_dump_and_the_next_run_removes_the_passfile(installed_db, tmp_path):
    """SIGKILL runs no handler, no finally, no atexit: pg_dump (waiting for a table lock here) dies with the
    command all the same (parent-death signal), and the next backup removes the passfile the killed one left
    in its private directory, with the killed run's .partial."""
    add_user_table(installed_db)
    target = tmp_path / "b"
    dsn = make_conninfo(installed_db.dsn, password="left-behind-" + uuid.uuid4().hex[:6])
    env = {k: v for k, v in os.environ.items() if k != "AUTOPILOT_DSN" and not k.startswith("PG")}
    # the statistics views are a snapshot per transaction: look from a connection of its own
    with installed_db.connect(autocommit=False) as locker, installed_db.connect() as look:
        locker.execute("LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE")  # pg_dump waits for it
        command = subprocess.Popen(
            [*autopilot_argv(), "runner", "backup", "--directory", str(target), "--dsn", dsn],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            wait_for(
                lambda: look.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'autopilot-backup' "
                    "AND wait_event_type = 'Lock'"
                ).fetchone()[0],
                "pg_dump waiting for the table lock",
            )
            # (found after the wait: `pg_dump --version` is a short-lived child of the command too)
            (pg_dump,) = children_of(command.pid, "pg_dump")
            passfile = Path(environ_of(pg_dump)["PGPASSFILE"])
            assert passfile.exists() and passfile.parent.parent == backups.private_root()
            assert (passfile.parent.stat().st_mode & 0o777) == 0o700
            command.send_signal(signal.SIGKILL)
            command.wait(timeout=10)
            wait_for(lambda: not alive(pg_dump), "pg_dump to die with the command")
        finally:
            if command.poll() is None:
                command.kill()
        locker.rollback()
        # the killed command's session ends (and its advisory lock on the backup's row with it)
        wait_for(
            lambda: (
                not look.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
            ),
            "the killed command's session to end",
        )
    assert passfile.exists()  # nobody could remove it: the command was killed outright
    assert [p for p in files_in(target) if p.endswith(".partial")]
    ((killed, _, status, _),) = statuses(installed_db)
    assert status == "running"

    result = backups.run_backup(installed_db.dsn, "manual", directory=str(target))
    assert result.abandoned == [killed] and not result.warnings
    assert not passfile.exists() and not passfile.parent.exists()
    b = result.backups[0]
    assert files_in(target) == sorted([b.path.name, b.manifest.name])


# -- finding 5: a server restart during restore ------------------------------------------------------

SLOW_CHECK = """
CREATE FUNCTION public.slow_in_restore(integer) RETURNS boolean LANGUAGE sql AS $$
    SELECT CASE WHEN pg_catalog.starts_with(pg_catalog.current_database(), 'autopilot_restoring_')
                THEN pg_catalog.pg_sleep(0.25) IS NOT NULL ELSE true END
$$;
CREATE TABLE public.slow (n integer CHECK (public.slow_in_restore(n)));
INSERT INTO public.slow SELECT pg_catalog.generate_series(1, 200);
"""


@pytest.fixture
def restartable(tmp_path) -> Database:
    """A server of its own (it is restarted) with autopilot installed in a database, whose restore is
    slow: each row of public.slow takes a quarter of a second to restore."""
    cluster = Cluster.create(pg_cron=False)
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE src")
        db = Database(cluster.dsn(), "src")
        db.install("extension")
        db.cluster = cluster
        with db.connect() as conn:
            conn.execute(SLOW_CHECK)
        set_setting(db, "backups.directory", str(tmp_path / "b"))
        backups.run_backup(db.dsn, "manual")
        yield db
    finally:
        cluster.destroy()


def restoring_databases(db) -> list[str]:
    with psycopg.connect(make_conninfo(db.dsn, dbname="postgres")) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, 'autopilot_restoring_') "
                "OR datname LIKE 'ap_copy%' ORDER BY 1"
            ).fetchall()
        ]


def wait_for_restore_copying(db) -> None:
    with psycopg.connect(make_conninfo(db.dsn, dbname="postgres"), autocommit=True) as conn:
        wait_for(
            lambda: conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE starts_with(datname, 'autopilot_restoring_') "
                "AND query LIKE 'COPY public.slow%'"
            ).fetchone()[0],
            "pg_restore copying the slow table",
            timeout=60,
        )


def test_server_restart_during_restore_leaves_no_half_restored_database(restartable, autopilot, monkeypatch):
    db, cluster = restartable, restartable.cluster

    # 1. the server stays down longer than the restore waits for it: the half-restored database cannot be
    # dropped at once; the CLI says so, status shows it, and the next run drops it
    monkeypatch.setattr(backups.restore, "RESTORE_DROP_WAIT", 2.0)
    run = Background(lambda: autopilot("runner", "restore", "--into", "ap_copy1", "--dsn", db.dsn))
    wait_for_restore_copying(db)
    cluster.stop()
    done = run.outcome(timeout=60)
    cluster.start()
    out = flat(done.output)
    assert done.exit_code == 1, out
    assert "could NOT be dropped now" in out and "dropped again" not in out
    (left,) = restoring_databases(db)
    assert left.startswith("autopilot_restoring_")  # "ap_copy1" itself never existed
    status = autopilot("status", "--dsn", db.dsn)
    assert f"half-restored database {left}" in flat(status.output)
    assert "ap_copy1" in flat(status.output)  # what it was being restored into (its comment)
    as_json = json.loads(autopilot("status", "--json", "--dsn", db.dsn).output)["backups"]
    assert [h["database"] for h in as_json["half_restored"]] == [left]

    backups.run_backup(db.dsn, "manual")  # the next run (a backup, or a restore) drops it
    assert restoring_databases(db) == []
    assert "half-restored" not in flat(autopilot("status", "--dsn", db.dsn).output)

    # 2. a restart the restore outlives: the half-restored database is dropped at once
    monkeypatch.setattr(backups.restore, "RESTORE_DROP_WAIT", 30.0)
    run = Background(lambda: autopilot("runner", "restore", "--into", "ap_copy2", "--dsn", db.dsn))
    wait_for_restore_copying(db)
    cluster.stop()
    cluster.start()
    done = run.outcome(timeout=90)
    assert done.exit_code == 1 and "new database was dropped again" in flat(done.output)
    assert restoring_databases(db) == []

    # 3. and a restore left alone succeeds, under its own name
    monkeypatch.setattr(backups.restore, "RESTORE_DROP_WAIT", 10.0)
    done = autopilot("runner", "restore", "--into", "ap_copy3", "--dsn", db.dsn)
    assert done.exit_code == 0, done.output
    assert restoring_databases(db) == ["ap_copy3"]


# -- the default backup of the cron database restores into a copy on the same server ------------------


def test_backup_of_the_cron_database_restores_into_a_copy(cron_db, admin_dsn, tmp_path, autopilot):
    """pg_cron lives in the database autopilot is installed in (the README's main setup): its extension
    can only be created there, so the restore leaves pg_cron's own objects out; the copy has everything
    else and no pg_cron."""
    cron_db.install("extension", sync=True)
    set_setting(cron_db, "backups.directory", str(tmp_path / "b"))
    with cron_db.connect() as conn:
        conn.execute("CREATE TABLE public.ap_restore_probe AS SELECT g FROM generate_series(1, 100) g")
    into = f"ap_cron_copy_{uuid.uuid4().hex[:6]}"
    try:
        done = autopilot("runner", "backup", "--dsn", cron_db.dsn)
        assert done.exit_code == 0, done.output
        done = autopilot("runner", "restore", "--into", into, "--dsn", cron_db.dsn)
        assert done.exit_code == 0, done.output
        assert "not restored: pg_cron's own objects" in flat(done.output)
        with psycopg.connect(make_conninfo(admin_dsn, dbname=into)) as conn:
            assert conn.execute("SELECT count(*) FROM public.ap_restore_probe").fetchone()[0] == 100
            extensions = {r[0] for r in conn.execute("SELECT extname FROM pg_extension").fetchall()}
            assert "autopilot" in extensions and "pg_cron" not in extensions
            assert conn.execute("SELECT to_regnamespace('cron')").fetchone()[0] is None
            assert conn.execute("SELECT count(*) FROM autopilot.job_catalog").fetchone()[0] > 0
        # pg_cron's jobs stayed where they were
        with cron_db.connect() as conn:
            assert conn.execute(
                "SELECT count(*) FROM cron.job WHERE database = current_database()"
            ).fetchone()[0]
    finally:
        with cron_db.connect() as conn:
            conn.execute("DROP TABLE IF EXISTS public.ap_restore_probe")
        drop_database(admin_dsn, into)


def drop_database(dsn: str, name: str) -> None:
    with psycopg.connect(make_conninfo(dsn, dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- finding 7: backup settings are validated when set ----------------------------------------------


def test_backup_settings_are_validated_when_set_and_when_used(installed_db, tmp_path, monkeypatch):
    for name, value in (
        ("backups.directory", ""),
        ("backups.directory", "relative/backups"),
        ("backups.format", "tar"),
    ):
        with installed_db.connect() as conn, pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
            conn.execute("SELECT autopilot.set_setting(%s, %s)", [name, value])
        assert caught.value.diag.message_hint  # says what is accepted
    # a value that got in before 0.4.0 (written straight into setting_values) is refused at backup time,
    # never used relative to the runner's working directory
    monkeypatch.chdir(tmp_path)
    with installed_db.connect() as conn:
        conn.execute("INSERT INTO autopilot.setting_values (name, value) VALUES ('backups.directory', '')")
    with pytest.raises(BackupFailed, match=r"backups\.directory is ''; it must be an absolute path"):
        backups.run_backup(installed_db.dsn, "manual")
    assert list(tmp_path.iterdir()) == []
