"""How the portal's log lines look, and the context every line carries.

Log events are dotted slugs ("intercom.webhook.duplicate"); what they are about rides along in `extra`. Every
line also carries, where known, the request id (RequestIdMiddleware), and in a task cluster the task's id and
name (django-q2's pre_execute signal, connected in PortalConfig.ready); `log_context(account=…)` adds more for a
block of code. Plain text (ContextFormatter) by default; JSON lines (JsonFormatter) with LOG_FORMAT=json. Both
handlers run RedactSecrets first, so a key or token that reaches a log call leaves masked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from django.http import HttpRequest
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from portal.redaction import SECRET_FIELD_NAMES, mask_secret, redact_text

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

# What the lines logged in this request, task or block are about: request_id, task_id, task_name, account…
_context: ContextVar[Mapping[str, object]] = ContextVar("log_context", default=MappingProxyType({}))


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Every line logged inside the block carries these fields (a log call's own `extra` wins)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def log_context_set(**fields: object) -> None:
    """Replace the context for what follows in this thread (a task's start, where no block encloses it)."""
    _context.set(fields)


class ContextFilter(logging.Filter):
    """Adds the current context to each record, and tames what Django's request logging passes in `extra`."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        request = record.__dict__.get("request")
        if isinstance(request, HttpRequest):
            # Its repr carries the query string (an OAuth code, a customer id in a filter): method and path only.
            record.request = f"{request.method} {request.path}"
        return True


class RedactSecrets(logging.Filter):
    """Masks what looks like a secret before any formatter sees it: the values of context fields named like one
    (api_key, token, authorization…), and in the message and its arguments the portal's own secrets and whatever
    follows `Bearer`, `Token`, `x-api-key:` and the like (portal.redaction.redact_text). A traceback is redacted as
    it is formatted (both formatters): the record keeps its exception for Sentry, which scrubs its own copy."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in list(vars(record)):
            if key not in _STANDARD and key.lower().replace("-", "_") in SECRET_FIELD_NAMES:
                setattr(record, key, mask_secret(str(getattr(record, key))))
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that don't fit the message: logging reports it, not us
            return True
        record.msg, record.args = redact_text(message), None
        return True


class ContextFormatter(logging.Formatter):
    """Plain text: the event, then what it is about as key=value."""

    def formatException(self, ei: Any) -> str:  # noqa: N802  (logging's name)
        return redact_text(super().formatException(ei))

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = {key: value for key, value in vars(record).items() if key not in _STANDARD}
        if context:
            text += " " + " ".join(f"{key}={value}" for key, value in context.items())
        return text


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: time, level, logger, event (the dotted slug), then every context field."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", ["levelname", "name", "message"])
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger", "message": "event"})
        kwargs.setdefault("reserved_attrs", [*_STANDARD - {"message", "levelname", "name"}])
        kwargs.setdefault("timestamp", "time")  # ISO 8601, UTC
        super().__init__(*args, **kwargs)

    # As python-json-logger's own: a list of lines when exc_info_as_array is set.
    def formatException(self, ei: Any) -> str | list[str]:  # type: ignore[override]  # noqa: N802
        formatted = super().formatException(ei)
        return redact_text(formatted) if isinstance(formatted, str) else [redact_text(line) for line in formatted]


def request_context_end(sender: object, **kwargs: Any) -> None:
    """Django's request_finished: what this thread logs next belongs to no request."""
    log_context_set()


def task_context_start(sender: object, *, task: Mapping[str, Any], **kwargs: Any) -> None:
    """django-q2's pre_execute, in the worker about to run a task: the task's lines say which task they are."""
    log_context_set(task_id=task.get("id"), task_name=task.get("name"), task_func=str(task.get("func")))


def task_context_end(sender: object, **kwargs: Any) -> None:
    """django-q2's post_execute_in_worker: the worker's lines between tasks belong to none."""
    log_context_set()
