"""Logging: text or JSON, with loop/namespace/name attached from the reconcile in progress.

The object being reconciled travels in a context variable, so every log line inside a reconcile
says which session it is about without threading a logger through every call. A last-line filter
redacts anything shaped like a bearer token, in case a message ever carries one by accident.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import re
import sys
from collections.abc import Iterator

_current: contextvars.ContextVar[tuple[str, str, str] | None] = contextvars.ContextVar(
    "reconcile", default=None
)

# JWTs (service-account tokens) and long opaque secrets must never reach a log sink.
_TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|(?i:bearer)\s+[^\s\"']+")


@contextlib.contextmanager
def bind_object(loop: str, namespace: str, name: str) -> Iterator[None]:
    token = _current.set((loop, namespace, name))
    try:
        yield
    finally:
        _current.reset(token)


def redact(text: str) -> str:
    return _TOKEN.sub("[REDACTED]", text)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        bound = _current.get()
        loop, namespace, name = bound if bound else ("", "", "")
        record.__dict__.update(loop=loop, namespace=namespace, objname=name)
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        where = ""
        if getattr(record, "loop", ""):
            fields = record.__dict__
            where = f" [{fields['loop']} {fields['namespace']}/{fields['objname']}]"
        line = (
            f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname:<7} "
            f"{record.name}{where} {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if getattr(record, "loop", ""):
            entry.update(
                loop=record.__dict__["loop"],
                namespace=record.__dict__["namespace"],
                name=record.__dict__["objname"],
            )
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        # Redacted field by field: redacting the JSON text could cut through its quotes.
        return json.dumps(entry, default=str)


def setup(log_format: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The official client logs request bodies at debug level; bodies can hold Secret data.
    for noisy in ("kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
