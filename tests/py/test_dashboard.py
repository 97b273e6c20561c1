"""`autopilot serve` in a real headless browser (Debian's chromium, driven by playwright), against a database
with real data: ledger runs, queued, executing and discarded jobs, a backup taken by pg_dump, an ingested
codebase. Each page renders its data (screenshots in build/test-artifacts/dashboard/), the retry form
changes the database with the right token and nothing with a wrong one; /metrics, scraped from `serve` and
from a runner started with --metrics-port, parses with prometheus_client's own parser."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import Database, _unschedule_database
from helpers import autopilot_argv, run_subprocess, wait_for
from prometheus_client.parser import text_string_to_metric_families

from pg_autopilot import installer, schedules
from pg_autopilot.web import metrics

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts" / "dashboard"
CHROMIUM = os.environ.get("AUTOPILOT_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "test-token-" + "x" * 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Seeded:
    """What the database holds: the ids the tests look for."""

    db: Database
    discarded: int
    available: int
    executing: int
    backup_id: int
    backup_size: int


def seed(db: Database, tmp: Path) -> Seeded:
    seeded = Seeded()
    seeded.db = db
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")
        conn.execute("SELECT autopilot.set_setting('backups.directory', %s)", [str(tmp / "backups")])
        # the ledger: a day of runs of two catalog jobs, some failed
        conn.execute(
            "INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at,"
            " rows_affected, message, error_sqlstate)"
            " SELECT CASE WHEN g % 2 = 0 THEN 'metrics-refresh' ELSE 'pattern-learning' END,"
            "  'database', 'pg_cron',"
            "  CASE WHEN g % 10 = 3 THEN 'failed' ELSE 'succeeded' END,"
            "  now() - g * interval '20 minutes',"
            "  now() - g * interval '20 minutes' + interval '1.5 seconds', g,"
            "  CASE WHEN g % 10 = 3 THEN 'deadlock detected (seeded)' ELSE 'ok: ' || g || ' rows' END,"
            "  CASE WHEN g % 10 = 3 THEN '40P01' END"
            " FROM generate_series(1, 60) AS g"
        )
        # the queue: three available jobs, a discarded one with its error, a code ingest executing
        for n in range(3):
            conn.execute("SELECT autopilot.enqueue('template-sync', %s::jsonb, 'default')", [f'{{"n": {n}}}'])
        seeded.available = conn.execute(
            "SELECT autopilot.enqueue('template-sync', '{\"n\": 99}'::jsonb, 'cancel-me')"
        ).fetchone()[0]
        seeded.discarded = conn.execute(
            "SELECT autopilot.enqueue('registry-sync', '{}'::jsonb, 'fragile', 0, NULL, 1)"
        ).fetchone()[0]
        job_id, attempt = conn.execute(
            "SELECT id, attempt FROM autopilot.claim('fragile', 'test-node:1', 1)"
        ).fetchone()
        assert (
            conn.execute(
                "SELECT autopilot.fail(%s, %s, 'ruff exited 2: no such file (seeded)', false)",
                [job_id, attempt],
            ).fetchone()[0]
            == "discarded"
        )
        seeded.executing = conn.execute(
            "SELECT autopilot.enqueue('code-ingest', '{}'::jsonb, 'ingest', 0, NULL, 20, NULL,"
            ' \'{"catalog": "code-ingest"}\'::jsonb)'
        ).fetchone()[0]
        claimed = conn.execute(
            "SELECT id, attempt FROM autopilot.claim('ingest', 'test-node:1', 1)"
        ).fetchone()
        assert claimed[0] == seeded.executing
        conn.execute(
            'UPDATE autopilot.jobs SET meta = jsonb_set(meta, \'{progress}\', \'{"codebase": "demo",'
            ' "done": 120, "of": 300, "unit": "files"}\'::jsonb || jsonb_build_object(\'at\', now()))'
            " WHERE id = %s",
            [seeded.executing],
        )
    # a codebase, ingested by the real pipeline, and a backup taken by the real pg_dump
    tree = tmp / "demo"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "shop.py").write_text(
        "def total(items):\n    return sum(i.price for i in items)\n\n\n"
        "class Cart:\n    def add(self, item):\n        self.items.append(item)\n"
    )
    for args in (("codebase", "add", "demo", str(tree)), ("codebase", "ingest", "demo"), ("backups", "run")):
        done = run_subprocess(*args, "--dsn", db.dsn)
        assert done.returncode == 0, done.stdout + done.stderr
    with db.connect() as conn:
        seeded.backup_id, seeded.backup_size = conn.execute(
            "SELECT id, size_bytes FROM autopilot.backup_metadata WHERE status = 'verified'"
        ).fetchone()
    return seeded


@pytest.fixture(scope="module")
def seeded(admin_dsn, cron_database, tmp_path_factory) -> Iterator[Seeded]:
    name = f"ap_dash_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(admin_dsn, name)
    try:
        with psycopg.connect(db.dsn) as conn:
            installer.install(conn)
            schedules.sync(conn, db.dsn)
        yield seed(db, tmp_path_factory.mktemp("dashboard"))
    finally:
        _unschedule_database(admin_dsn, cron_database, name)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def server(seeded) -> Iterator[str]:
    with serving(seeded.db.dsn) as base:
        yield base


@contextlib.contextmanager
def serving(dsn: str) -> Iterator[str]:
    """`autopilot serve` as a real process on a free port; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AUTOPILOT_DSN" and not k.startswith("PG")}
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [*autopilot_argv(), "serve", "--dsn", dsn, "--port", str(port), "--token", TOKEN],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        first = process.stdout.readline()
        assert f"autopilot dashboard on {base}/" in first, first + process.stderr.read()
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM}: no chromium (tools/bootstrap.sh installs Debian's)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def visit(page, url: str, shot: str | None = None):
    response = page.goto(url)
    assert response.status == 200, (url, response.status, page.inner_text("body")[:500])
    if shot:
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    return page


def job_state(seeded: Seeded, job_id: int) -> str:
    return seeded.db.scalar("SELECT state FROM autopilot.jobs WHERE id = %s", [job_id])


def test_overview_shows_the_jobs_the_queue_and_the_backup(seeded, server, page):
    visit(page, server + "/", "overview")
    text = page.inner_text("main")
    assert f"database {seeded.db.name}" in text
    for job in ("metrics-refresh", "pattern-learning", "backup-daily", "code-ingest"):
        assert page.locator("td.mono a", has_text=re.compile(f"^{job}$")).count() == 1, job
    # the seeded ledger: metrics-refresh last ran 40 minutes ago and succeeded
    row = page.locator("tr", has=page.locator("td.mono a", has_text=re.compile("^metrics-refresh$")))
    assert "succeeded" in row.inner_text() and "40m ago" in row.inner_text()
    # the queue: 3 available in default, the discarded job, the executing ingest and its progress
    queue_row = page.locator("tr", has=page.locator("td.mono", has_text=re.compile("^all queues$")))
    assert [queue_row.locator("td").nth(i).inner_text() for i in range(1, 9)] == [
        "4",
        "0",
        "0",
        "1",
        "0",
        "0",
        "1",
        "0",
    ]
    assert "120/300 files" in text and f"#{seeded.executing}" in text
    assert f"#{seeded.backup_id}" in text and "on time" in text
    # autopilot.health's rows, each on the page (the seeded data has some: a discarded job, a failure)
    with seeded.db.connect() as conn:
        problems = conn.execute("SELECT severity, check_name, subject FROM autopilot.health").fetchall()
    assert problems
    for severity, check_name, subject in problems:
        row = page.locator(
            "tr", has=page.locator("td.mono", has_text=re.compile(f"^{re.escape(check_name)}$"))
        )
        assert any(subject in r and severity in r for r in row.all_inner_texts()), (check_name, subject)


def test_runs_page_filters_by_job_and_outcome(seeded, server, page):
    visit(page, server + "/runs", "runs")
    assert page.locator("tbody tr").count() >= 60
    page.select_option("select[name=job]", "pattern-learning")
    page.select_option("select[name=outcome]", "failed")
    page.click("form.filters button")
    page.wait_for_load_state()
    page.screenshot(path=str(ARTIFACTS / "runs-filtered.png"), full_page=True)
    rows = page.locator("tbody tr")
    # g % 10 = 3 and g odd among 1..60: 3, 13, ..., 53
    assert rows.count() == 6
    for i in range(6):
        assert "pattern-learning" in rows.nth(i).inner_text() and "failed" in rows.nth(i).inner_text()
        assert "40P01" in rows.nth(i).inner_text()
    # a time range: pattern-learning ran 20, 60, 100, ... minutes ago (odd g): once in the last hour, 30
    # times in the last 24 hours; from/to: between 90 and 150 minutes ago, at 100 and 140
    visit(page, server + "/runs?last=1h&job=pattern-learning")
    assert page.locator("tbody tr").count() == 1
    visit(page, server + "/runs?last=24h&job=pattern-learning")
    assert page.locator("tbody tr").count() == 30
    with seeded.db.connect() as conn:
        start, end = conn.execute(
            "SELECT to_char(now() AT TIME ZONE 'UTC' - interval '150 minutes', 'YYYY-MM-DD\"T\"HH24:MI:SS'),"
            " to_char(now() AT TIME ZONE 'UTC' - interval '90 minutes', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        ).fetchone()
    visit(page, server + f"/runs?job=pattern-learning&from={start}&to={end}")
    assert page.locator("tbody tr").count() == 2
    assert page.goto(server + "/runs?outcome=nonsense").status == 400


def test_run_history_and_job_lists_page_without_gaps_or_overlaps(seeded):
    from pg_autopilot.queue import QueueClient
    from pg_autopilot.status import ledger_job_names, run_history

    with seeded.db.connect() as conn:
        names = ledger_job_names(conn)
        assert {"metrics-refresh", "pattern-learning", "registry-sync"} <= set(names)
        everything = run_history(conn, jobs=names, limit=1000)
        pages, before = [], None
        while page := run_history(conn, jobs=names, before=before, limit=7):
            pages.extend(page)
            before = (page[-1]["started_at"], page[-1]["id"])
        assert [r["id"] for r in pages] == [r["id"] for r in everything] and len(everything) >= 61
        queue = QueueClient(lambda: contextlib.nullcontext(conn))
        first = queue.list_jobs(limit=2)
        rest = queue.list_jobs(before_id=first[-1]["id"], limit=100)
        every = queue.list_jobs(limit=100)
        assert [j["id"] for j in first + rest] == [j["id"] for j in every]


def test_queue_pages_show_states_errors_and_attempts(seeded, server, page):
    visit(page, server + "/queue", "queue")
    text = page.inner_text("main")
    assert "test-node:1" in text  # the runner node heartbeating the executing job
    visit(page, server + "/queue?state=discarded")
    assert page.locator("tbody tr", has_text="registry-sync").count() == 1
    visit(page, server + f"/queue/{seeded.discarded}", "job-discarded")
    text = page.inner_text("main")
    assert "ruff exited 2: no such file (seeded)" in text  # its error
    assert "1 of 1" in text  # attempts
    assert page.locator("h2", has_text="Attempts in the ledger · 1").count() == 1


def test_retry_through_the_form_needs_the_token(seeded, server, page):
    assert job_state(seeded, seeded.discarded) == "discarded"
    visit(page, server + f"/queue/{seeded.discarded}")
    retry = page.locator("form[action$='/retry']")
    retry.locator("input[name=token]").fill("wrong-token-" + "y" * 16)
    with page.expect_navigation() as refused:
        retry.locator("button").click()
    assert refused.value.status == 403
    assert "wrong token: nothing was changed" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "retry-refused.png"), full_page=True)
    assert job_state(seeded, seeded.discarded) == "discarded"

    visit(page, server + f"/queue/{seeded.discarded}")
    retry = page.locator("form[action$='/retry']")
    retry.locator("input[name=token]").fill(TOKEN)
    retry.locator("button").click()
    page.wait_for_url(re.compile(r"done=retry-done"))
    page.screenshot(path=str(ARTIFACTS / "retry-done.png"), full_page=True)
    assert "The job will run again." in page.inner_text("main")
    assert job_state(seeded, seeded.discarded) == "available"
    assert seeded.db.scalar("SELECT max_attempts FROM autopilot.jobs WHERE id = %s", [seeded.discarded]) == 2


def test_cancel_through_the_form(seeded, server, page):
    visit(page, server + f"/queue/{seeded.available}")
    cancel = page.locator("form[action$='/cancel']")
    cancel.locator("input[name=token]").fill(TOKEN)
    cancel.locator("input[name=reason]").fill("not needed")
    cancel.locator("button").click()
    page.wait_for_url(re.compile(r"done=cancel-done"))
    assert job_state(seeded, seeded.available) == "cancelled"
    assert "cancelled: not needed" in page.inner_text("main")


def test_backups_and_codebases_pages(seeded, server, page):
    visit(page, server + "/backups", "backups")
    row = page.locator("tbody tr", has=page.locator("td.num", has_text=re.compile(f"^{seeded.backup_id}$")))
    assert "verified" in row.inner_text() and "present" in row.inner_text()
    visit(page, server + "/codebases", "codebases")
    row = page.locator("tbody tr", has_text="demo")
    text = row.inner_text()
    assert "120/300 files" in text and f"#{seeded.executing}" in text
    files = seeded.db.scalar("SELECT count(*) FROM autopilot.code_files WHERE codebase = 'demo'")
    assert files == 1 and re.search(r"\b1\b", text)


def test_the_server_refuses_other_host_names_and_unknown_pages(server):
    request = urllib.request.Request(server + "/", headers={"Host": "attacker.example:8080"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 421
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(server + "/nothing-here", timeout=10)
    assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as not_allowed:
        urllib.request.urlopen(urllib.request.Request(server + "/queue/1/retry"), timeout=10)
    assert not_allowed.value.code == 405


def scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(families: dict, name: str, **labels: str) -> float:
    found = [s.value for s in families[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, families.get(name))
    return found[0]


def check_metrics(families: dict, seeded: Seeded) -> None:
    assert value(families, "autopilot_up") == 1
    # the ledger: 30 runs of pattern-learning in the last 24 h (odd g of 1..60 minus those past 24 h: none)
    assert (
        value(families, "autopilot_job_runs_24h", job="pattern-learning", trigger="pg_cron", outcome="failed")
        == 6
    )
    assert (
        value(
            families, "autopilot_job_runs_24h", job="pattern-learning", trigger="pg_cron", outcome="succeeded"
        )
        == 24
    )
    assert (
        value(families, "autopilot_job_last_duration_seconds", job="metrics-refresh", side="database") == 1.5
    )
    last = value(
        families, "autopilot_job_last_success_timestamp_seconds", job="metrics-refresh", side="database"
    )
    assert abs(time.time() - 40 * 60 - last) < 300
    assert value(families, "autopilot_queue_jobs", queue="default", state="available") == 3
    assert value(families, "autopilot_queue_jobs", queue="ingest", state="executing") == 1
    assert value(families, "autopilot_queue_oldest_available_age_seconds", queue="default") >= 0
    assert value(families, "autopilot_runners_alive") == 1
    assert value(families, "autopilot_backup_size_bytes", database=seeded.db.name) == seeded.backup_size
    assert 0 <= value(families, "autopilot_backup_age_seconds", database=seeded.db.name) < 3600
    assert value(families, "autopilot_backup_overdue", database=seeded.db.name) == 0
    with seeded.db.connect() as conn:
        by_severity = dict(
            conn.execute("SELECT severity, count(*) FROM autopilot.health GROUP BY 1").fetchall()
        )
    assert by_severity
    for severity, n in by_severity.items():
        assert value(families, "autopilot_health_problems", severity=severity) == n


def test_metrics_from_serve_parse_and_hold_the_data(seeded, server):
    check_metrics(scrape(server + "/metrics"), seeded)


def test_a_runner_serves_metrics_with_metrics_port(seeded):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AUTOPILOT_DSN" and not k.startswith("PG")}
    runner = subprocess.Popen(
        [*autopilot_argv(), "runner", "start", "--dsn", seeded.db.dsn, "--queues", "nothing-here",
         "--no-startup-jobs", "--metrics-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        families = wait_for(lambda: _try_scrape(f"http://127.0.0.1:{port}/metrics"), "the runner's /metrics")
        check_metrics(families, seeded)
    finally:
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, err
    assert '"metrics served"' in err or "metrics served" in err


def _try_scrape(url: str) -> dict | None:
    with contextlib.suppress(OSError):
        return scrape(url)
    return None


def test_metrics_say_down_when_the_database_cannot_be_read():
    from pg_autopilot.db import connect

    down = metrics.registry(lambda: connect(f"host=127.0.0.1 port={free_port()} dbname=x connect_timeout=2"))
    from prometheus_client.exposition import generate_latest

    families = {f.name: f.samples for f in text_string_to_metric_families(generate_latest(down).decode())}
    assert value(families, "autopilot_up") == 0
    assert "autopilot_queue_jobs" not in families


def test_the_read_only_role_reads_every_page_and_cannot_act(seeded, admin_dsn):
    """As the README's read-only role: every page and /metrics; an action is refused by the server."""
    from readme_roles import readme_roles

    with readme_roles(admin_dsn, seeded.db) as dsns, serving(dsns["readonly"]) as base:
        for path in ("/", "/runs", "/queue", f"/queue/{seeded.executing}", "/backups", "/codebases"):
            with urllib.request.urlopen(base + path, timeout=10) as answer:
                assert answer.status == 200, path
        assert value(scrape(base + "/metrics"), "autopilot_up") == 1
        before = seeded.db.scalar("SELECT state FROM autopilot.jobs WHERE id = %s", [seeded.executing])
        form = f"token={TOKEN}".encode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + f"/queue/{seeded.executing}/cancel", data=form, timeout=10)
        assert refused.value.code == 403
        assert "permission denied" in refused.value.read().decode()
        assert job_state(seeded, seeded.executing) == before == "executing"


def test_serve_refuses_a_short_token_and_a_port_in_use(seeded):
    done = run_subprocess("serve", "--dsn", seeded.db.dsn, "--port", str(free_port()), "--token", "short")
    assert done.returncode == 1
    assert "the token is too short" in done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_subprocess("serve", "--dsn", seeded.db.dsn, "--port", str(port))
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "pick another --port" in done.stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
