"""Structured JSON logs, one object per line, with the case and correlation ids.

The case id (and reference) and correlation id (the `RequestReceived` event id,
shared by every event of a case) are carried in context variables: the consumer
sets them for each message it handles, the outbox relay for each event it
publishes, and the HTTP layer for each request (from the route's `case_id`
parameter and the `X-Correlation-Id` header, or a correlation id made for the
request when the caller sent none). Every log line written meanwhile, on the event loop
or on the store thread, carries them, so one request can be followed through
all four services with `grep <correlation id>`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}

case_id_var: ContextVar[str | None] = ContextVar("khidma_case_id", default=None)
case_ref_var: ContextVar[str | None] = ContextVar("khidma_case_ref", default=None)
correlation_id_var: ContextVar[str | None] = ContextVar("khidma_correlation_id", default=None)
event_id_var: ContextVar[str | None] = ContextVar("khidma_event_id", default=None)

_VARS = {
    "case_id": case_id_var,
    "case_ref": case_ref_var,
    "correlation_id": correlation_id_var,
    "event_id": event_id_var,
}


def current_context() -> dict[str, str | None]:
    return {name: var.get() for name, var in _VARS.items()}


def set_log_context(**values: object) -> None:
    """Sets the given ids for the rest of the current task (or thread)."""
    for name, value in values.items():
        _VARS[name].set(None if value is None else str(value))


@contextlib.contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Sets the given ids for the duration of the block, then restores them."""
    tokens = [
        (_VARS[name], _VARS[name].set(None if value is None else str(value)))
        for name, value in values.items()
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def context_of_event(event: Any) -> dict[str, str]:
    """The log context of an integration event."""
    return {
        "case_id": str(event.case_id),
        "case_ref": str(event.case_ref),
        "correlation_id": str(event.correlation_id),
        "event_id": str(event.event_id),
    }


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, instance: str | None = None):
        super().__init__()
        self.service = service
        self.instance = instance or default_instance()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "instance": self.instance,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Always present, so that a query on them never misses a line by its shape.
        for name, var in _VARS.items():
            entry[name] = var.get()
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = (
                    value if value is None or isinstance(value, (int, float, bool)) else str(value)
                )
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def default_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def configure_logging(service: str, level: str = "INFO", instance: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, instance))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn and faststream configure their own handlers (faststream's does not
    # propagate); send their lines through ours as JSON.
    import faststream  # noqa: F401  (its logger is set up on import)

    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "faststream.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
