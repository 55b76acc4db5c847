"""Logging set-up, and the filter that keeps secrets out of every log line."""

from __future__ import annotations

import logging
import os
import re

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


def configure_logging(level: str | None = None) -> None:
    global _configured
    root = logging.getLogger()
    if not _configured:
        if not root.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            root.addHandler(handler)
        _configured = True
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    # gunicorn's loggers keep their own handlers and do not propagate to the root's; its access log
    # prints each request line, query string and all, so a delivery-report URL would print its token.
    # A logger's own filter also outlives gunicorn swapping its handlers (log reopen).
    for name in _OWN_HANDLER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
    root.setLevel(level or os.environ.get("SMSQUEUE_LOG_LEVEL", "INFO"))
    # urllib3 logs every request line with its query string at DEBUG: keep it quieter.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
