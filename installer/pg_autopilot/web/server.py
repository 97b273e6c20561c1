"""The server `autopilot serve` runs the dashboard in: the standard library's WSGI server (wsgiref) made
threaded, so that a slow page or a Prometheus scrape does not hold up the others, over a small pool of
autocommit connections (psycopg_pool)."""

from __future__ import annotations

import logging
import secrets
import socketserver
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from psycopg_pool import ConnectionPool

from ..db import APPLICATION_NAME, conninfo
from .app import Dashboard
from .metrics import session_settings

log = logging.getLogger("pg_autopilot.web")


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class QuietHandler(WSGIRequestHandler):
    """One line per request on the logger (not wsgiref's own lines on stderr)."""

    def log_message(self, format: str, *args: object) -> None:  # wsgiref's signature
        log.info("%s %s", self.address_string(), format % args)


def new_token() -> str:
    return secrets.token_urlsafe(24)


def make_dashboard_server(
    dsn: str | None, host: str, port: int, token: str, pool_size: int = 4
) -> tuple[ThreadingWSGIServer, ConnectionPool]:
    """The server (bound, not yet serving) and its pool; port 0 picks a free port (server.server_port)."""
    pool = ConnectionPool(
        conninfo(dsn, application_name=f"{APPLICATION_NAME} serve"),
        min_size=1,
        max_size=pool_size,
        kwargs={"autocommit": True},
        configure=session_settings,
        timeout=10,
        open=True,
    )
    try:
        pool.wait(timeout=10)
        app = Dashboard(pool.connection, dsn, token, check_host=_is_loopback(host))
        server = make_server(host, port, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    except BaseException:
        pool.close()
        raise
    return server, pool


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
