"""The dashboard as a WSGI application: server-rendered pages (jinja2, autoescaped), no JavaScript.

Pages read through the domain modules (status, queue, backups.status, backups.inventory, codebases); the
two actions -- retry and cancel a queued job -- are POST forms that carry the dashboard's token, typed in by
whoever acts (the pages never hold it), compared in constant time."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlencode

import psycopg
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from psycopg.rows import dict_row

from .. import __version__
from ..backups.progress import size_text
from ..errors import AutopilotError
from ..queue import QueueClient
from ..render import _progress_text as progress_text
from ..render import _reported, ago, duration, until
from ..status import QUEUE_STATES, RUN_OUTCOMES, gather, job_attempts, ledger_job_names, run_history
from ..terminal import safe
from . import metrics

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection]]

RUNS_PAGE = 100
JOBS_PAGE = 50
# the "last" choices of the run history (its default: 7 days)
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "7d"
INGEST_WORKERS = ("code-ingest", "rag-setup")
MAX_FORM_BYTES = 4096
# the answers' headers: nothing runs or loads from elsewhere, no page is framed, no form posts elsewhere
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self';"
     " frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]  # fmt: skip
LOOPBACK_NAMES = {"localhost"}


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str, hint: str | None = None):
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    environ: dict

    def arg(self, name: str) -> str | None:
        value = self.query.get(name, "").strip()
        return value or None

    def form(self) -> dict[str, str]:
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_FORM_BYTES:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the form is too large")
        body = self.environ["wsgi.input"].read(length).decode("utf-8", "replace") if length else ""
        return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _stamp(value: Any) -> str:
    """A time recorded as ISO text in jsonb (a job's errors), as :func:`_when` shows times; else as it is."""
    try:
        return _when(datetime.fromisoformat(str(value)))
    except (TypeError, ValueError):
        return safe(value)


def _bytes(value: Any) -> str:
    return size_text(value) if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not re.fullmatch(r"\d{1,18}", value):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be a whole number, not {value!r}")
    return int(value)


def _time(value: str | None, name: str) -> datetime | None:
    """A time of a filter: ISO 8601, UTC unless it says otherwise (a datetime-local input has no zone)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HttpError(
            HTTPStatus.BAD_REQUEST, f"{name} is not a time: {value!r}", hint="e.g. 2026-12-04T17:00 (UTC)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _choice(value: str | None, name: str, choices: Iterable[str]) -> str | None:
    if value is not None and value not in choices:
        raise HttpError(
            HTTPStatus.BAD_REQUEST, f"unknown {name} {value!r}", hint="one of " + ", ".join(choices)
        )
    return value


class Dashboard:
    """The WSGI application of `autopilot serve`."""

    def __init__(
        self, connection: ConnectionFactory, dsn: str | None, token: str, *, check_host: bool = True
    ):
        self._connection = connection
        self._dsn = dsn
        self._token = token
        self._check_host = check_host
        self._metrics = metrics.registry(connection)
        self._env = Environment(
            loader=PackageLoader("pg_autopilot.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters.update(
            when=_when,
            stamp=_stamp,
            duration=duration,
            size=_bytes,
            clean=safe,
            progress=progress_text,
            query=urlencode,
            reported=_reported,
        )
        self._env.globals.update(version=__version__, ago=ago, until=until)
        self._routes: list[tuple[str, re.Pattern, Callable[..., tuple]]] = [
            ("GET", re.compile(r"/"), self.overview),
            ("GET", re.compile(r"/runs"), self.runs),
            ("GET", re.compile(r"/queue"), self.queue),
            ("GET", re.compile(r"/queue/(\d{1,18})"), self.job),
            ("POST", re.compile(r"/queue/(\d{1,18})/(retry|cancel)"), self.act),
            ("GET", re.compile(r"/backups"), self.backups),
            ("GET", re.compile(r"/codebases"), self.codebases),
            ("GET", re.compile(r"/metrics"), self.metrics),
        ]

    # -- WSGI ----------------------------------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        request = Request(environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/", query, environ)
        try:
            if self._check_host and not self._loopback_host(environ):
                raise HttpError(
                    HTTPStatus.MISDIRECTED_REQUEST,
                    "this dashboard answers to 127.0.0.1 and localhost only",
                    hint="serve it with --host to reach it under another name",
                )
            status, content_type, body, extra = self._dispatch(request)
        except HttpError as exc:
            status, content_type, body, extra = exc.status, "text/html; charset=utf-8", self._error(exc), []
        except (AutopilotError, psycopg.Error) as exc:
            message = exc.message if isinstance(exc, AutopilotError) else str(exc).splitlines()[0]
            refused = (
                exc.sqlstate if isinstance(exc, AutopilotError) else getattr(exc, "sqlstate", None)
            ) == "42501"
            error = HttpError(
                HTTPStatus.FORBIDDEN if refused else HTTPStatus.INTERNAL_SERVER_ERROR,
                f"the database said: {message}",
                "the role of serve's DSN needs EXECUTE on this function (README: Monitoring)"
                if refused else getattr(exc, "hint", None),
            )  # fmt: skip
            status, content_type, body, extra = (
                error.status,
                "text/html; charset=utf-8",
                self._error(error),
                [],
            )
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            *SECURITY_HEADERS,
            *extra,
        ]
        start_response(f"{status.value} {status.phrase}", headers)
        return [body] if request.method != "HEAD" else []

    def _loopback_host(self, environ: dict) -> bool:
        """Served on a loopback address, the Host header must name one (or localhost): a page elsewhere
        cannot then read the dashboard through a DNS name rebound to 127.0.0.1."""
        host = environ.get("HTTP_HOST", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]").lower()
        if name in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def _dispatch(self, request: Request) -> tuple[HTTPStatus, str, bytes, list]:
        path = request.path.rstrip("/") or "/"
        allowed = []
        for method, pattern, handler in self._routes:
            if match := pattern.fullmatch(path):
                if method == request.method or (method == "GET" and request.method == "HEAD"):
                    return handler(request, *match.groups())
                allowed.append(method)
        if allowed:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} is not allowed here")
        raise HttpError(HTTPStatus.NOT_FOUND, f"no page {path}")

    def _page(self, template: str, **context: Any) -> tuple[HTTPStatus, str, bytes, list]:
        html = self._env.get_template(template).render(**context)
        return HTTPStatus.OK, "text/html; charset=utf-8", html.encode(), []

    def _error(self, error: HttpError) -> bytes:
        return (
            self._env.get_template("error.html")
            .render(status=error.status, message=error.message, hint=error.hint, page=None)
            .encode()
        )

    def _queue_client(self, conn: psycopg.Connection) -> QueueClient:
        return QueueClient(lambda: contextlib.nullcontext(conn))

    # -- pages ---------------------------------------------------------------------------------------

    def overview(self, request: Request) -> tuple:
        with self._connection() as conn:
            status = gather(conn, self._dsn)
            health = self._health(conn)
        # the queue's totals per state, as status counted them (the queue page splits them per queue)
        totals = [{"queue": "all queues", "states": status.queue, "oldest_wait": None}]
        return self._page(
            "overview.html", page="overview", status=status, now=status.now, health=health,
            queues=totals, states=QUEUE_STATES,
        )  # fmt: skip

    def _health(self, conn: psycopg.Connection) -> list[dict] | None:
        """autopilot.health's rows, critical first; None where the installed version has no such view."""
        if not conn.execute("SELECT to_regclass('autopilot.health') IS NOT NULL").fetchone()[0]:
            return None
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT h.severity, h.check_name, h.subject, h.message, h.since FROM autopilot.health AS h"
                " ORDER BY h.severity = 'critical' DESC, h.since NULLS LAST, h.check_name, h.subject"
            ).fetchall()

    def runs(self, request: Request) -> tuple:
        outcome = _choice(request.arg("outcome"), "outcome", RUN_OUTCOMES)
        last = _choice(request.arg("last") or DEFAULT_RANGE, "range", [*RANGES, "all"])
        start, end = _time(request.arg("from"), "from"), _time(request.arg("to"), "to")
        before_id = _int(request.arg("before_id"), "before_id")
        before_at = _time(request.arg("before_at"), "before_at")
        with self._connection() as conn:
            now = conn.execute("SELECT now()").fetchone()[0]
            names = ledger_job_names(conn)
            job = request.arg("job")
            if start is None and last != "all":
                start = now - RANGES[last]
            rows = run_history(
                conn, jobs=[job] if job else names, outcome=outcome, since=start, until=end,
                before=(before_at, before_id) if before_at and before_id else None, limit=RUNS_PAGE + 1,
            )  # fmt: skip
        more = len(rows) > RUNS_PAGE
        rows = rows[:RUNS_PAGE]
        filters = {k: v for k, v in request.query.items() if k not in ("before_at", "before_id") and v}
        older = (
            {**filters, "before_at": rows[-1]["started_at"].isoformat(), "before_id": rows[-1]["id"]}
            if more
            else None
        )
        return self._page(
            "runs.html", page="runs", now=now, rows=rows, names=names, outcomes=RUN_OUTCOMES, ranges=RANGES,
            job=job, outcome=outcome, last=last, start=request.arg("from"), end=request.arg("to"),
            older=older, paged=before_id is not None, filters=filters,
        )  # fmt: skip

    def queue(self, request: Request) -> tuple:
        state = _choice(request.arg("state"), "state", QUEUE_STATES)
        queue_name = request.arg("queue")
        worker = request.arg("worker")
        before = _int(request.arg("before"), "before")
        with self._connection() as conn:
            now = conn.execute("SELECT now()").fetchone()[0]
            client = self._queue_client(conn)
            depth = client.depth()
            jobs = client.list_jobs(
                state=state, queue=queue_name, worker=worker, before_id=before, limit=JOBS_PAGE + 1
            )
            executing = client.executing()
            held = client.held() if any(r["state"] == "waiting" for r in depth) else []
            alive = client.runners_alive()
        more = len(jobs) > JOBS_PAGE
        jobs = jobs[:JOBS_PAGE]
        filters = {k: v for k, v in request.query.items() if k != "before" and v}
        return self._page(
            "queue.html", page="queue", now=now, queues=_queues(depth, now), states=QUEUE_STATES, jobs=jobs,
            executing=executing, held=held, alive=alive, state=state, queue_name=queue_name, worker=worker,
            filters=filters, older={**filters, "before": jobs[-1]["id"]} if more else None,
            paged=before is not None,
        )  # fmt: skip

    def job(self, request: Request, job_id: str) -> tuple:
        with self._connection() as conn:
            now = conn.execute("SELECT now()").fetchone()[0]
            job = self._queue_client(conn).job(int(job_id))
            if job is None:
                raise HttpError(HTTPStatus.NOT_FOUND, f"no job {job_id} in autopilot.jobs",
                                hint="finished jobs are deleted after jobs.completed_retention")  # fmt: skip
            attempts = job_attempts(conn, job)
        return self._page(
            "job.html", page="queue", now=now, job=job, attempts=attempts, done=request.arg("done"),
            can_retry=job["state"] in ("scheduled", "retryable", "discarded", "cancelled", "completed"),
            can_cancel=job["state"] in ("available", "scheduled", "retryable", "waiting", "executing"),
        )  # fmt: skip

    def act(self, request: Request, job_id: str, action: str) -> tuple:
        form = request.form()
        given = form.get("token", "")
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            raise HttpError(
                HTTPStatus.FORBIDDEN, "wrong token: nothing was changed",
                hint="the token `autopilot serve` printed when it started (or its --token)",
            )  # fmt: skip
        with self._connection() as conn:
            client = self._queue_client(conn)
            if action == "retry":
                done = client.retry(int(job_id))
            else:
                done = client.cancel(
                    int(job_id), (form.get("reason") or "").strip()[:500] or "from the dashboard"
                )
        outcome = f"{action}-{'done' if done else 'refused'}"
        return HTTPStatus.SEE_OTHER, "text/plain", b"", [("Location", f"/queue/{job_id}?done={outcome}")]

    def backups(self, request: Request) -> tuple:
        from ..backups.inventory import list_backups
        from ..backups.status import backup_status

        with self._connection() as conn:
            now = conn.execute("SELECT now()").fetchone()[0]
            summary = backup_status(conn, now)
            listed, directory, unreadable = (
                list_backups(conn, limit=100) if summary is not None else ([], None, None)
            )
        return self._page(
            "backups.html", page="backups", now=now, summary=summary, listed=listed, directory=directory,
            unreadable=unreadable,
        )  # fmt: skip

    def codebases(self, request: Request) -> tuple:
        from ..codebases import list_codebases

        with self._connection() as conn:
            now = conn.execute("SELECT now()").fetchone()[0]
            rows = list_codebases(conn)
            progress = {r["codebase"]: r for r in self._queue_client(conn).latest_progress(INGEST_WORKERS)}
        return self._page("codebases.html", page="codebases", now=now, rows=rows, progress=progress)

    def metrics(self, request: Request) -> tuple:
        return HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self._metrics), []


def _queues(depth: list[dict], now: datetime) -> list[dict]:
    """Per queue: its jobs per state, and how long its oldest available job has waited."""
    queues: dict[str, dict] = {}
    for row in depth:
        entry = queues.setdefault(row["queue"], {"queue": row["queue"], "states": {}, "oldest_wait": None})
        entry["states"][row["state"]] = row["jobs"]
        if row["oldest_available_at"] is not None:
            entry["oldest_wait"] = now - row["oldest_available_at"]
    return [queues[name] for name in sorted(queues)]
