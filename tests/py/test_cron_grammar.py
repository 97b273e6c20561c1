"""Cron expressions: autopilot's validator against pg_cron's own parser.

Every expression of the corpus goes through ``autopilot.cron_expression_error()`` and through
``cron.schedule()`` (then ``cron.unschedule()``); the two must agree on every one. The only
expressions on which they may differ are those pg_cron accepts but would not run as written
(text it ignores, a backwards range, a number it wraps around, @reboot): autopilot refuses
them, and the test checks both that pg_cron still accepts them and that autopilot says why.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from pg_autopilot import installer
from pg_autopilot.status import interval_of, next_runs

PROBE = "autopilot-grammar:probe"
CRON_SCHEDULE = (
    "SELECT schedule FROM cron.job WHERE jobname = 'autopilot:' || %(db)s || ':table-statistics' "
    "AND database = %(db)s"
)

CORPUS = [
    # five fields
    "* * * * *",
    "*/5 * * * *",
    "0 * * * *",
    "0 0 * * *",
    "5-59/10 * * * *",
    "0-59/15 0,12 * * *",
    "0 5 1-7 * *",
    "0 0 1,15 * *",
    "59 23 31 12 6",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 * * sun",
    "0 0 * * MON-FRI",
    "0 0 * * Mon,Wed,fri",
    "0 0 * jan-MAR *",
    "00007 * * * *",
    "*/59 * * * *",
    "* * * * */7",
    "0 0 */31 * *",
    "*/100 * * * *",
    "  30   0 * * *  ",
    "0\t0\t*\t*\t*",
    "\n\n0 * * * *",
    "0 * * * *\n",
    "0 * * * *\r\n",
    # macros
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
    "@hourly ",
    " @daily",
    "@hourly\t",
    "\n@weekly",
    # refused by both
    "",
    "   ",
    "* * * *",
    "0 0 0",
    "@HOURLY",
    "@Daily",
    "@",
    "@ hourly",
    "@hourly\r",
    "@fortnightly",
    "*/0 * * * *",
    "60 * * * *",
    "* 24 * * *",
    "* * 0 * *",
    "* * 32 * *",
    "* * * 0 *",
    "* * * 13 *",
    "* * * * 8",
    "5/10 * * * *",
    "* * * jan/2 *",
    "1,,2 * * * *",
    "1, * * * *",
    ",1 * * * *",
    "-5 * * * *",
    "5- * * * *",
    "x * * * *",
    "mon * * * *",
    "* * * * jan",
    "* * * january *",
    "* * * * monday",
    "*/x * * * *",
    "*/ * * * *",
    "* *\n* * *",
    "\r* * * * *",
    "*/2147483648 * * * *",
    "2147483648 * * * *",
    "30 seconds",
    "1 second",
    "0 0 $ * *",
    "0" * 995 + " * * * *",
    # accepted by pg_cron, not run as written: refused by autopilot (NOT_AS_WRITTEN)
    "0 * * * * *",
    "*/10 * * * * *",
    "* * * * * 2024",
    "@hourly foo",
    "@daily *",
    "@reboot",
    "@restart",
    "10-5 * * * *",
    "0 0 * * mon-sun",
    "1-2-3 * * * *",
    "5; * * * *",
    "*x * * * *",
    "*-5 * * * *",
    "*/5/2 * * * *",
    "*\r * * * *",
    "4294967296 * * * *",
    "*/4294967297 * * * *",
    "*/99999999999 * * * *",
    "# nightly\n0 0 * * *",
]

# pg_cron accepts these, but would not run them as written; autopilot refuses them, saying this
NOT_AS_WRITTEN = {
    "0 * * * * *": "pg_cron would ignore everything after the fifth",
    "*/10 * * * * *": "pg_cron would ignore everything after the fifth",
    "* * * * * 2024": "pg_cron would ignore everything after the fifth",
    "@hourly foo": "pg_cron would ignore it",
    "@daily *": "pg_cron would ignore it",
    "@reboot": "runs when pg_cron starts, at no time of day",
    "@restart": "runs when pg_cron starts, at no time of day",
    "10-5 * * * *": "runs backwards (pg_cron would read it as no value at all)",
    "0 0 * * mon-sun": "range 1-0 runs backwards (pg_cron would read it as no value at all; sun is 0",
    "1-2-3 * * * *": '"1-2-3" is not a range',
    "5; * * * *": '";" cannot appear in a cron field',
    "*x * * * *": 'minute field "*x"',
    "*-5 * * * *": 'minute field "*-5"',
    "*/5/2 * * * *": 'minute field "*/5/2"',
    "*\r * * * *": "separated by spaces or tabs",
    "4294967296 * * * *": "out of range 0-59",
    "*/4294967297 * * * *": "step 4294967297 is larger",
    "*/99999999999 * * * *": "step 99999999999 is larger",
    "# nightly\n0 0 * * *": "starts with a comment",
}

# pg_cron in another database: its version cannot be read, so autopilot allows only what every
# pg_cron from 1.4 on accepts and runs; these the installed pg_cron (1.4) takes as well
NOT_EVERY_VERSION = {
    "*/100 * * * *": "step 100 is larger than 59, which pg_cron 1.6.5 and later refuse",
    "@yearly": "pg_cron 1.6 and later accept @yearly but never run it",
    "@annually": "pg_cron 1.6 and later accept @annually but never run it",
}


def _pg_cron_accepts(cron_conn: psycopg.Connection, expression: str) -> bool:
    try:
        with cron_conn.transaction():
            cron_conn.execute("SELECT cron.schedule(%s, %s, 'SELECT 1')", [PROBE, expression])
            cron_conn.execute("SELECT cron.unschedule(%s)", [PROBE])
    except psycopg.errors.InvalidParameterValue:
        return False
    return True


def _autopilot_errors(conn: psycopg.Connection) -> dict[str, str | None]:
    rows = conn.execute(
        "SELECT e, autopilot.cron_expression_error(e) FROM unnest(%s::text[]) AS e", [CORPUS]
    ).fetchall()
    return dict(rows)


def _pg_cron_version(cron_conn: psycopg.Connection) -> tuple[int, int]:
    version = cron_conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'").fetchone()[0]
    major, minor = version.split("-")[0].split(".")[:2]
    return int(major), int(minor)


def _disagreements(errors: dict[str, str | None], cron_conn, refused_on_purpose: dict[str, str]) -> list[str]:
    """Every expression on which autopilot and pg_cron do not agree as they should."""
    wrong = []
    for expression in CORPUS:
        error = errors[expression]
        accepted_by_pg_cron = _pg_cron_accepts(cron_conn, expression)
        pg_cron = "accepts" if accepted_by_pg_cron else "refuses"
        if expression in refused_on_purpose:
            if not accepted_by_pg_cron or error is None or refused_on_purpose[expression] not in error:
                wrong.append(
                    f"{expression!r}: pg_cron {pg_cron} it (refused on purpose), autopilot says {error!r}"
                )
        elif accepted_by_pg_cron != (error is None):
            wrong.append(f"{expression!r}: pg_cron {pg_cron} it, autopilot says {error!r}")
    return wrong


def test_corpus_in_the_cron_database(cron_db, cron_conn):
    """pg_cron in autopilot's own database: autopilot accepts exactly what pg_cron accepts (and runs
    as written), in the grammar of the installed pg_cron version."""
    assert len(set(CORPUS)) == len(CORPUS)
    assert set(NOT_AS_WRITTEN) <= set(CORPUS) and set(NOT_EVERY_VERSION) <= set(CORPUS)
    with cron_db.connect() as conn:
        installer.install(conn, mode="schema")
        errors = _autopilot_errors(conn)
    refused_on_purpose = dict(NOT_AS_WRITTEN)
    if _pg_cron_version(cron_conn) >= (1, 5):  # pg_cron 1.6.0 has extension version 1.5
        refused_on_purpose |= {e: NOT_EVERY_VERSION[e] for e in ("@yearly", "@annually")}
    if _pg_cron_version(cron_conn) >= (1, 6):
        refused_on_purpose.pop("*/100 * * * *", None)  # pg_cron 1.6.5 refuses it too
    wrong = _disagreements(errors, cron_conn, refused_on_purpose)
    assert not wrong, "\n".join(wrong)
    # the corpus holds both sides
    assert sum(e is None for e in errors.values()) >= 30
    assert sum(e is not None for e in errors.values()) >= 50
    assert cron_conn.execute("SELECT count(*) FROM cron.job WHERE jobname = %s", [PROBE]).fetchone()[0] == 0


def test_corpus_across_databases(db, cron_conn):
    """pg_cron in another database: autopilot accepts nothing pg_cron refuses, and refuses only what
    pg_cron would not run as written or what a later pg_cron refuses or never runs."""
    with db.connect() as conn:
        installer.install(conn, mode="schema")
        assert conn.execute("SELECT autopilot._pg_cron_version()").fetchone()[0] is None
        errors = _autopilot_errors(conn)
    wrong = _disagreements(errors, cron_conn, NOT_AS_WRITTEN | NOT_EVERY_VERSION)
    assert not wrong, "\n".join(wrong)
    assert "pg_cron is not created in this database" in errors["30 seconds"]


def test_schedule_a_macro_end_to_end(synced_db, autopilot, cron_conn):
    """`autopilot schedule X @hourly` is registered with pg_cron as written, and status shows when it
    runs next; @reboot is refused with the reason and changes nothing."""
    db = synced_db
    result = autopilot("schedule", "table-statistics", "@hourly", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert cron_conn.execute(CRON_SCHEDULE, {"db": db.name}).fetchone()[0] == "@hourly"
    report = autopilot("status", "--json", "--dsn", db.dsn)
    assert report.exit_code == 0, report.output
    job = next(j for j in json.loads(report.stdout)["jobs"] if j["name"] == "table-statistics")
    next_run = datetime.fromisoformat(job["next_run_at"])
    assert next_run.minute == 0 and next_run.second == 0
    assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(hours=1)

    refused = autopilot("schedule", "table-statistics", "@reboot", "--dsn", db.dsn)
    assert refused.exit_code != 0
    assert "@reboot runs when pg_cron starts" in " ".join(refused.stderr.split())
    assert cron_conn.execute(CRON_SCHEDULE, {"db": db.name}).fetchone()[0] == "@hourly"


@pytest.mark.parametrize("mode", ["extension", "schema"])
def test_upgrade_keeps_a_role_able_to_check_schedules(db, admin_dsn, mode):
    """cron_expression_error() calls two new private functions from 0.4.0 on: a role granted it
    before the upgrade can still call it (and is_valid_cron) after."""
    role = f"{db.name}_checker"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        with db.connect() as conn:
            installer.install(conn, mode=mode, version="0.3.0")
            conn.execute(f'GRANT USAGE ON SCHEMA autopilot TO "{role}"')
            conn.execute(
                f"GRANT EXECUTE ON FUNCTION autopilot.cron_expression_error(text), "
                f'autopilot.is_valid_cron(text) TO "{role}"'
            )
            installer.upgrade(conn, to="0.4.0")
        with psycopg.connect(db.dsn, user=role, autocommit=True) as conn:
            assert conn.execute("SELECT autopilot.cron_expression_error('@hourly')").fetchone()[0] is None
            assert conn.execute("SELECT autopilot.is_valid_cron('@reboot')").fetchone()[0] is False
    finally:
        with psycopg.connect(db.dsn, autocommit=True) as admin:
            admin.execute(f'DROP OWNED BY "{role}" CASCADE')  # its grants
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f'DROP ROLE "{role}"')


def test_ticks_of_macros_agree_with_status(db):
    """A macro's ticks (the catch-up rule, in SQL) and its next runs (`autopilot status`, croniter)
    are the same minutes."""
    after = datetime(2026, 12, 30, 22, 30, tzinfo=UTC)
    until = after + timedelta(days=2)
    with db.connect() as conn:
        installer.install(conn, mode="schema")
        for macro in ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"):
            ticks = [
                r[0]
                for r in conn.execute(
                    "SELECT t FROM autopilot._cron_ticks(%s, %s, %s) AS t", [macro, after, until]
                )
            ]
            expected = [t for t in next_runs(macro, None, after, count=60) if t <= until]
            assert ticks == expected, macro


@pytest.mark.parametrize(
    ("schedule", "first", "interval"),
    [
        ("@hourly", datetime(2026, 11, 28, 23, 0, tzinfo=UTC), timedelta(hours=1)),
        ("@weekly", datetime(2026, 11, 29, 0, 0, tzinfo=UTC), timedelta(days=7)),
        ("@monthly", datetime(2026, 12, 1, 0, 0, tzinfo=UTC), timedelta(days=31)),
        ("0 0 $ * *", datetime(2026, 11, 30, 0, 0, tzinfo=UTC), timedelta(days=31)),
        ("30 seconds", datetime(2026, 11, 28, 22, 0, 30, tzinfo=UTC), timedelta(seconds=30)),
        ("1 Second", datetime(2026, 11, 28, 22, 0, 1, tzinfo=UTC), timedelta(seconds=1)),
    ],
)
def test_status_reads_every_grammar(schedule, first, interval):
    """`autopilot status` computes the next run and the interval of macros, "$" and seconds schedules."""
    now = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    assert next_runs(schedule, None, now)[0] == first
    assert interval_of(schedule, None, now) == interval


def test_overdue_interval_in_sql_agrees_with_status_grammar(db):
    """autopilot.health's interval (SQL, autopilot._schedule_interval) is the one `status` computed in
    Python before it moved into SQL: the longest gap between the coming fires, a weekday kept when given."""
    now = datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    schedules = [
        ("@hourly", None),
        ("@daily", None),
        ("@weekly", None),
        ("@monthly", None),
        ("@yearly", None),
        ("0 0 $ * *", None),
        ("30 seconds", None),
        ("*/15 * * * *", None),
        ("0 5 1-7 * *", None),
        ("0 3 * * *", 0),
        ("17 */6 * * *", 3),
        ("0 0 1,15 * 3", None),
        ("0 12 * 2,8 *", None),
    ]
    with db.connect() as conn:
        installer.install(conn, mode="schema")
        for schedule, dow in schedules:
            sql_interval = conn.execute(
                "SELECT autopilot._schedule_interval(%s, %s, %s)", [schedule, dow, now]
            ).fetchone()[0]
            assert sql_interval == interval_of(schedule, dow, now), (schedule, dow)
        # where the coming 12 fires are all on one day, status' Python saw the gaps of that day only; the
        # SQL sees the weekend: a weekday job's Friday success is not overdue on Monday morning
        weekdays = "5,50 9-17 * * 1-5"
        assert interval_of(weekdays, None, now) == timedelta(minutes=45)
        sql_interval = conn.execute(
            "SELECT autopilot._schedule_interval(%s, NULL, %s)", [weekdays, now]
        ).fetchone()[0]
        assert sql_interval == timedelta(days=2, hours=15, minutes=15)
