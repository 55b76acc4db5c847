"""Logging set-up, the filter that keeps secrets out of every log line, and the request id.

With SMSQUEUE_LOG_FORMAT=json every line is one JSON object (python-json-logger). Each line carries the
`request_id` of the HTTP request it serves (X-Request-Id, or one generated), also in the worker: the
message's row keeps it (`messages.request_id`), and the sender's line for each message it claims
carries that message's (a claim takes the due messages of many requests at once).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The request this context serves: set by the web per request and by the worker per task.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def accepted_request_id(given: str | None) -> str:
    """The caller's X-Request-Id when it is a sane token, else a new one (never a header injection)."""
    if given and _REQUEST_ID.match(given):
        return given
    return secrets.token_hex(16)


@contextmanager
def request_id_bound(request_id: str | None) -> Iterator[None]:
    """Log lines written inside carry this request id (a worker's lines about one message of a batch)."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


# Query parameters and fields that carry secrets in provider URLs and bodies.
_SECRET_PARAM = re.compile(
    r"(?i)\b(psw|password|apikey|api_key|api_id|token|secret|authorization)(=|:\s*|\"\s*:\s*\")([^&\s\",]+)"
)
_BEARER = re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    return _BEARER.sub("Bearer ***", text)


class RedactingFilter(logging.Filter):
    """Masks secret-looking values in every record, as a last line of defence (the code never logs
    secrets on purpose; this catches a library that logs a URL with a token in it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_configured = False
_OWN_HANDLER_LOGGERS = ("gunicorn.access", "gunicorn.error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _formatter() -> logging.Formatter:
    if os.environ.get("SMSQUEUE_LOG_FORMAT", "").lower() == "json":
        from pythonjsonlogger.json import JsonFormatter

        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(process)d",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter(TEXT_FORMAT)


def _own_filters(handler: logging.Handler | logging.Logger) -> None:
    for kind in (RedactingFilter, RequestIdFilter):
        if not any(isinstance(f, kind) for f in handler.filters):
            handler.addFilter(kind())


def configure_logging(level: str | None = None) -> None:
    global _configured
    root = logging.getLogger()
    if not _configured:
        if not root.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(_formatter())
            root.addHandler(handler)
        _configured = True
    json_lines = os.environ.get("SMSQUEUE_LOG_FORMAT", "").lower() == "json"
    for handler in root.handlers:
        _own_filters(handler)
        if json_lines:  # Celery and gunicorn install handlers of their own: they write JSON too
            handler.setFormatter(_formatter())
    # gunicorn's loggers keep their own handlers and do not propagate to the root's; its access log
    # prints each request line, query string and all, so a delivery-report URL would print its token.
    # A logger's own filter also outlives gunicorn swapping its handlers (log reopen).
    for name in _OWN_HANDLER_LOGGERS:
        logger = logging.getLogger(name)
        _own_filters(logger)
        if json_lines:
            for handler in logger.handlers:
                handler.setFormatter(_formatter())
    root.setLevel(level or os.environ.get("SMSQUEUE_LOG_LEVEL", "INFO"))
    # urllib3 logs every request line with its query string at DEBUG: keep it quieter.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
