"""Backups a DBA can see: `autopilot backups list`, `autopilot backups verify` (a deleted file marks the
backup missing, a changed one corrupt, exit code non-zero), the progress of a running backup (the job's meta,
the backup's row, `status`, the runner's log, the CLI), `status` saying "file missing", and the earlier
spellings `autopilot runner backup` / `runner restore`.

Everything runs the real pg_dump / pg_restore against the session's real server.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import threading
import time
import uuid

import psycopg
import pytest
from helpers import assert_status_exit, flat
from psycopg import sql
from psycopg.conninfo import make_conninfo
from test_backups import rows, set_setting

from pg_autopilot import backups
from pg_autopilot.errors import RestoreFailed
from pg_autopilot.runner import Runner, RunnerConfig
from pg_autopilot.workers import REGISTRY


def status_of(db, backup_id: int) -> tuple[str, str | None]:
    return tuple(
        rows(db, "SELECT status, error FROM autopilot.backup_metadata WHERE id = %s", [backup_id])[0]
    )


def listed(autopilot, db) -> dict[int, dict]:
    done = autopilot("backups", "list", "--json", "--dsn", db.dsn)
    assert done.exit_code == 0, done.output
    return {b["id"]: b for b in json.loads(done.stdout)["backups"]}


def status_json(autopilot, db) -> dict:
    done = autopilot("status", "--json", "--dsn", db.dsn)
    assert_status_exit(done)
    return json.loads(done.stdout)


def add_filler(db, rows_: int) -> None:
    """Some MB of hardly compressible text, so that pg_dump takes a moment."""
    with db.connect() as conn:
        conn.execute(
            "CREATE TABLE public.filler AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) "
            "|| md5((g * 7)::text) AS payload FROM generate_series(1, %s) AS g",
            [rows_],
        )


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- list and verify ----------------------------------------------------------------------------------


def test_list_and_verify_mark_missing_and_corrupt_backups(installed_db, tmp_path, autopilot):
    db = installed_db
    set_setting(db, "backups.directory", str(tmp_path / "b"))
    first = backups.run_backup(db.dsn, "hourly").backups[0]
    second = backups.run_backup(db.dsn, "manual").backups[0]

    # list: both, newest first, as recorded; their files there
    done = autopilot("backups", "list", "--json", "--dsn", db.dsn)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["files_checked"] is True and report["directory"] == str(tmp_path / "b")
    assert [b["id"] for b in report["backups"]] == [second.id, first.id]
    entry = report["backups"][1]
    assert (entry["database"], entry["kind"], entry["status"], entry["file"]) == (
        db.name,
        "hourly",
        "verified",
        "present",
    )
    assert (entry["sha256"], entry["size_bytes"], entry["file_path"]) == (
        first.sha256,
        first.size_bytes,
        str(first.path),
    )
    assert entry["started_at"] and entry["finished_at"] and entry["format"] == "custom"
    table = flat(autopilot("backups", "list", "--dsn", db.dsn).output)
    assert f"│ {second.id} │ {db.name} │ manual │" in table
    assert first.sha256[:12] in table and "verified" in table

    # verify: both files read again, their sha256 the recorded one
    done = autopilot("backups", "verify", "--all", "--dsn", db.dsn)
    assert done.exit_code == 0, done.output
    assert flat(done.output).count("ok: sha256 matches") == 2
    check = listed(autopilot, db)[first.id]["last_check"]
    assert check["result"] == "ok" and check["sha256"] == first.sha256 and check["at"]

    # the newer file deleted: list and status flag it at once (a stat), before any verify
    second.path.unlink()
    assert listed(autopilot, db)[second.id]["file"] == "missing"
    assert "verified, FILE MISSING" in flat(autopilot("backups", "list", "--dsn", db.dsn).output)
    backups_status = status_json(autopilot, db)["backups"]["databases"][0]
    assert backups_status["last_verified_id"] == first.id  # not the one whose file is gone
    assert [m["id"] for m in backups_status["file_missing"]] == [second.id]
    shown = flat(autopilot("status", "--dsn", db.dsn).output)
    assert "last verified" in shown and f"(#{first.id}, hourly" in shown
    assert f"file missing: #{second.id} (manual" in shown and str(second.path) in shown

    # verify marks it missing, says what to do, and exits non-zero
    done = autopilot("backups", "verify", str(second.id), "--dsn", db.dsn)
    assert done.exit_code == 1, done.output
    out = flat(done.output)
    assert f"1 of 1 backup(s) checked did not verify: #{second.id} missing" in out
    assert "missing (marked missing): file missing:" in out and "put it back and verify it again" in out
    assert status_of(db, second.id) == ("missing", f"file missing: {second.path}")
    assert listed(autopilot, db)[second.id]["status"] == "missing"
    backups_status = status_json(autopilot, db)["backups"]["databases"][0]
    assert backups_status["last_verified_id"] == first.id and backups_status["file_missing"] == []
    assert [(m["id"], m["problem"]) for m in backups_status["marked"]] == [(second.id, "file missing")]
    assert f"file missing: #{second.id}" in flat(autopilot("status", "--dsn", db.dsn).output)
    with pytest.raises(RestoreFailed, match=f"backup #{second.id} is missing, not verified"):
        backups.restore_backup(db.dsn, second.id, f"ap_never_{uuid.uuid4().hex[:6]}")

    # the older file changed by one byte: verify --all marks it corrupt (the missing one stays missing)
    original = first.path.read_bytes()
    with open(first.path, "r+b") as f:
        f.seek(len(original) // 2)
        f.write(bytes([original[len(original) // 2] ^ 0xFF]))
    done = autopilot("backups", "verify", "--all", "--json", "--dsn", db.dsn)
    assert done.exit_code == 1
    checked = {c["id"]: c for c in json.loads(done.stdout)["checked"]}
    assert (
        checked[first.id]["outcome"],
        checked[first.id]["status_before"],
        checked[first.id]["status"],
    ) == (
        "corrupt",
        "verified",
        "corrupt",
    )
    assert checked[second.id]["outcome"] == "missing" and checked[second.id]["status_before"] == "missing"
    assert "2 of 2 backup(s) checked did not verify" in flat(done.stderr)
    assert "A backup marked corrupt no longer counts" in flat(done.stderr)
    status, error = status_of(db, first.id)
    assert status == "corrupt" and "failed verification" in error and first.sha256 in error
    assert first.path.exists()  # kept for the DBA to examine
    backups_status = status_json(autopilot, db)["backups"]["databases"][0]
    assert backups_status["last_verified_id"] is None and backups_status["overdue"] is True
    assert {m["id"]: m["problem"] for m in backups_status["marked"]} == {
        first.id: "failed verification",
        second.id: "file missing",
    }
    with pytest.raises(RestoreFailed, match="no verified backup to restore"):
        backups.restore_backup(db.dsn, None, f"ap_never_{uuid.uuid4().hex[:6]}")

    # the file as it was again: verified again, and counted again
    first.path.write_bytes(original)
    done = autopilot("backups", "verify", str(first.id), "--dsn", db.dsn)
    assert done.exit_code == 0, done.output
    assert "was corrupt: verified again" in flat(done.output)
    assert status_of(db, first.id) == ("verified", None)
    assert status_json(autopilot, db)["backups"]["databases"][0]["last_verified_id"] == first.id


def test_verify_marks_nothing_when_it_cannot_look(installed_db, tmp_path, autopilot):
    """No directory here (another host, a disk not mounted): nothing is marked missing; a row that is not the
    runner's is not checked; a pruned backup has nothing to check; and the arguments are checked."""
    db = installed_db
    set_setting(db, "backups.directory", str(tmp_path / "b"))
    kept = backups.run_backup(db.dsn, "manual").backups[0]
    (tmp_path / "b").rename(tmp_path / "elsewhere")
    done = autopilot("backups", "verify", "--all", "--dsn", db.dsn)
    assert done.exit_code == 1
    assert f"the backup directory {tmp_path / 'b'} does not exist on this host" in flat(done.output)
    assert "nothing was checked or marked" in flat(done.output)
    assert status_of(db, kept.id) == ("verified", None)
    # status cannot look either, and says so rather than vouching for the file
    shown = flat(autopilot("status", "--dsn", db.dsn).output)
    assert "its file not checked: the backup directory" in shown
    assert status_json(autopilot, db)["backups"]["files_not_checked"].endswith("does not exist on this host")

    (tmp_path / "elsewhere").rename(tmp_path / "b")
    with db.connect() as conn:
        moved = conn.execute(
            "INSERT INTO autopilot.backup_metadata (kind, database_name, status, file_path, sha256, "
            "size_bytes, started_at, finished_at, verified_at, details) SELECT kind, database_name, status, "
            "%s, sha256, size_bytes, started_at, finished_at, verified_at, details "
            "FROM autopilot.backup_metadata WHERE id = %s RETURNING id",
            [str(tmp_path / "copy.dump"), kept.id],
        ).fetchone()[0]
        conn.execute("UPDATE autopilot.backup_metadata SET status = 'pruned' WHERE id = %s", [kept.id])
    done = autopilot("backups", "verify", str(kept.id), str(moved), "999999", "--json", "--dsn", db.dsn)
    assert done.exit_code == 1
    outcomes = {c["id"]: (c["outcome"], c["message"]) for c in json.loads(done.stdout)["checked"]}
    assert outcomes[kept.id][0] == "not checked" and "it is pruned" in outcomes[kept.id][1]
    assert outcomes[moved][0] == "untrusted" and "the record is not trusted" in outcomes[moved][1]
    assert outcomes[999999][0] == "not checked" and "no backup #999999" in outcomes[999999][1]
    assert status_of(db, moved) == ("verified", None)  # nothing marked on the word of a row

    for args in ((), ("1", "--all"), ("1", "--database", db.name)):
        done = autopilot("backups", "verify", *args, "--dsn", db.dsn)
        assert done.exit_code == 2, done.output


# -- progress ------------------------------------------------------------------------------------------


@pytest.fixture
def runner_log():
    """The runner's log records (the workers' included), as dicts, for the length of the test."""
    records: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append({"event": record.getMessage(), **getattr(record, "fields", {})})

    logger = logging.getLogger("autopilot.runner")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_a_running_backup_reports_its_progress(installed_db, tmp_path, autopilot, runner_log):
    """A backup job run by the runner: bytes written and the rate land in the job's meta and the backup's
    row while pg_dump writes, `status` shows them, and the runner logs start, progress and finish."""
    db = installed_db
    add_filler(db, 400_000)  # about 50 MB of table, some 15 MB of archive: pg_dump takes a moment
    set_setting(db, "backups.directory", str(tmp_path / "b"))
    earlier = backups.run_backup(db.dsn, "manual").backups[0]  # the size the next one is measured against

    job_id = db.scalar("SELECT autopilot.enqueue('backup', '{\"kind\": \"hourly\"}', 'backups')")
    seen: list[dict] = []
    during: dict = {}
    runner = Runner(
        RunnerConfig(dsn=db.dsn, queues=("backups",), poll_interval=0.2, enqueue_startup_jobs=False),
        workers=REGISTRY,
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state, meta = rows(db, "SELECT state, meta FROM autopilot.jobs WHERE id = %s", [job_id])[0]
            progress = meta.get("progress")
            if progress and (not seen or progress != seen[-1]):
                seen.append(progress)
            if progress and progress.get("phase") == "dumping" and progress["done"] > 0 and not during:
                # while pg_dump writes: status shows it, from the job's meta and from the backup's row
                during["status"] = status_json(autopilot, db)
                during["table"] = flat(autopilot("status", "--dsn", db.dsn).output)
            if state in ("completed", "retryable", "discarded"):
                break
            time.sleep(0.05)
    finally:
        runner.stop()
        thread.join(timeout=30)
    assert state == "completed", seen

    dumping = [p for p in seen if p.get("phase") == "dumping"]
    assert dumping, f"no progress report while pg_dump wrote: {seen}"
    (backup_id,) = {p["backup_id"] for p in seen}
    final = rows(db, "SELECT size_bytes FROM autopilot.backup_metadata WHERE id = %s", [backup_id])[0][0]
    report = dumping[0]
    assert report["unit"] == "bytes" and 0 < report["done"] < final
    assert report["bytes_per_second"] > 0 and report["of"] == earlier.size_bytes
    assert report["database"] == db.name and report["kind"] == "hourly" and report["at"]
    assert seen[-1]["phase"] == "finished" and seen[-1]["done"] == final

    (executing,) = [j for j in during["status"]["executing"] if j["id"] == job_id]
    assert executing["progress"]["done"] > 0 and executing["progress"]["phase"] == "dumping"
    (running,) = during["status"]["backups"]["databases"][0]["in_progress"]
    assert running["id"] == backup_id and running["live"] is True and running["progress"]["done"] > 0
    assert f"executing #{job_id} backup (attempt 1)" in during["table"] and "B/s" in during["table"]
    assert f"backup in progress: #{backup_id} (hourly)" in during["table"]
    # the row keeps no progress once verified
    assert (
        "progress"
        not in rows(db, "SELECT details FROM autopilot.backup_metadata WHERE id = %s", [backup_id])[0][0]
    )

    events = [r for r in runner_log if r.get("backup_id") == backup_id]
    names = [r["event"] for r in events]
    assert names[0] == "backup started" and names[-1] == "backup finished", names
    # rate-limited: never two progress lines within LOG_MIN_SECONDS of pg_dump's time
    logged = [r["seconds"] for r in events if r["event"] == "backup progress"]
    assert logged, names
    assert all(b - a >= backups.progress.LOG_MIN_SECONDS - 0.11 for a, b in itertools.pairwise(logged))
    finished = events[-1]
    assert finished["job_id"] == job_id and finished["done"] == final and finished["sha256"]


def test_backups_run_prints_its_progress(installed_db, tmp_path, autopilot):
    """Not on a terminal (a pipe, a log): lines on stderr, start and finish at least."""
    set_setting(installed_db, "backups.directory", str(tmp_path / "b"))
    done = autopilot("backups", "run", "--dsn", installed_db.dsn)
    assert done.exit_code == 0, done.output
    (backup_id,) = rows(installed_db, "SELECT id FROM autopilot.backup_metadata")[0]
    err = flat(done.stderr)
    assert f"backup #{backup_id} of {installed_db.name} (manual): pg_dump started" in err
    assert f"backup #{backup_id} of {installed_db.name}: verified" in err
    assert "manual backup in" in flat(done.stdout)


# -- the earlier spellings ------------------------------------------------------------------------------


def test_runner_backup_and_runner_restore_are_the_backups_commands(
    installed_db, admin_dsn, tmp_path, autopilot
):
    db = installed_db
    target = str(tmp_path / "b")
    for spelling in (("backups", "run"), ("runner", "backup")):
        done = autopilot(*spelling, "--directory", target, "--dsn", db.dsn)
        assert done.exit_code == 0, done.output
        assert "manual backup in" in flat(done.output)
    ids = [
        r[0]
        for r in rows(db, "SELECT id FROM autopilot.backup_metadata WHERE status = 'verified' ORDER BY id")
    ]
    assert len(ids) == 2

    into = [f"ap_restored_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    try:
        for name, spelling, backup_id in zip(
            into, (("backups", "restore"), ("runner", "restore")), ids, strict=True
        ):
            done = autopilot(
                *spelling, "--backup", str(backup_id), "--into", name, "--directory", target, "--dsn", db.dsn
            )
            assert done.exit_code == 0, done.output
            assert f"restored backup #{backup_id}" in flat(done.output)
            with psycopg.connect(make_conninfo(admin_dsn, dbname=name)) as conn:
                assert conn.execute("SELECT count(*) FROM autopilot.backup_metadata").fetchone()[0] >= 1
    finally:
        for name in into:
            drop_database(admin_dsn, name)
    for spelling in (("backups", "verify"), ("backups", "list")):
        assert autopilot(*spelling, "--help").exit_code == 0


def test_progress_of_a_directory_archive_counts_its_files(installed_db, tmp_path):
    """The directory format: the bytes of every file pg_dump writes, reported to the caller's sink."""
    set_setting(installed_db, "backups.format", "directory")
    reports: list[backups.BackupProgress] = []
    result = backups.run_backup(installed_db.dsn, directory=str(tmp_path / "b"), progress=reports.append)
    b = result.backups[0]
    phases = [r.phase for r in reports]
    assert phases[0] == "started" and phases[-1] == "finished" and "verifying" in phases
    verifying = next(r for r in reports if r.phase == "verifying")
    assert verifying.bytes == b.size_bytes == backups.progress.archive_bytes(b.path)
    assert reports[-1].sha256 == b.sha256 and reports[-1].bytes == b.size_bytes
    shutil.rmtree(b.path)
    assert backups.progress.archive_bytes(b.path) == 0
    os.makedirs(b.path)
    assert backups.progress.archive_bytes(b.path) == 0
