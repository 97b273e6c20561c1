"""The runner's logging: one JSON object per line on stderr, for every logger of the process."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import pythonjsonlogger.core
import pythonjsonlogger.json

log = logging.getLogger("autopilot.runner")


class JsonFormatter(pythonjsonlogger.json.JsonFormatter):
    """One JSON object per line for every record, whichever logger wrote it (psycopg_pool's and
    psycopg's too): ts, level, event, logger, the record's per-call fields (:func:`event`) or extras,
    and an exception's traceback as one string field, ``traceback`` (JSON escapes its line breaks)."""

    def __init__(self) -> None:
        super().__init__(
            json_default=str,
            reserved_attrs=[*pythonjsonlogger.core.RESERVED_ATTRS, "fields"],
            rename_fields={"exc_info": "traceback", "stack_info": "stack"},
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict) -> None:
        log_data["ts"] = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        )
        log_data["level"] = record.levelname.lower()
        log_data["event"] = record.getMessage()
        log_data["logger"] = record.name
        super().add_fields(log_data, record, message_dict)  # traceback, stack, extras
        log_data.pop("message", None)  # the library's default field: "event" here
        log_data.update(getattr(record, "fields", {}))


def configure_logging(level: str = "info") -> None:
    """Every line the process writes to stderr is JSON: one handler, at the root, for every logger;
    Python warnings and uncaught exceptions (any thread's) go through it too, tracebacks as a field."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    log.handlers[:] = []
    log.setLevel(logging.NOTSET)
    log.propagate = True
    logging.captureWarnings(True)

    def uncaught(exc_type, exc, tb) -> None:
        log.critical("uncaught exception", exc_info=(exc_type, exc, tb))

    def uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            log.critical(
                "uncaught exception in thread",
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
                extra={"fields": {"thread": args.thread.name if args.thread else None}},
            )

    sys.excepthook = uncaught
    threading.excepthook = uncaught_in_thread


def event(level: int, name: str, **fields: Any) -> None:
    """Logs the event ``name`` with ``fields`` as top-level keys of its JSON line."""
    log.log(level, name, extra={"fields": fields})


def text(value: object) -> str:
    """str(value), whatever value's __str__ does (a worker's result or exception is anybody's code)."""
    try:
        return str(value)
    except Exception as exc:
        return f"<{type(value).__name__}: str() raised {type(exc).__name__}>"


def one_line(exc: BaseException) -> str:
    return " ".join(text(exc).split())
