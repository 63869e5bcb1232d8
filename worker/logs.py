"""Structured logs: one line per event, ``key=value``, with registered secrets cut out.

A line reads::

    time=2026-11-24T15:18:41.166Z level=INFO logger=worker.pipeline run=2026-11-0001
    invoice=1001 export="Heeros (API)" message="sent as HX-1"

(on one line). ``run``, ``invoice`` and ``export`` come from the record's
``extra`` when a caller passes them; the message itself keeps whatever
``run=... invoice=...`` it was written with. Values with spaces, quotes or
line breaks are quoted, so a line never splits.

A client key or token registered with :func:`register_secret` is replaced by
``[redacted]`` wherever it would appear: message, arguments or traceback, whatever
its length. A URL is shown with :func:`url_without_password`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"
HIDDEN = "***"
CONTEXT_FIELDS = ("run", "invoice", "export")
PASSWORD_PARAMETERS = frozenset({"password", "pass", "pwd"})

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Have every log line redact ``value``, however short (an empty value is ignored)."""
    if value:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced, the longest first."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def url_without_password(url: str) -> str:
    """``url`` with its password, in the user part or as a query parameter, shown as ``***``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_query = any(name.lower() in PASSWORD_PARAMETERS for name, _ in query)
    if parts.password is None and not in_query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{HIDDEN}@{netloc.rpartition('@')[2]}"
    if in_query:
        hidden = [(n, HIDDEN if n.lower() in PASSWORD_PARAMETERS else v) for n, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts._replace(netloc=netloc))


class RedactSecrets(logging.Filter):
    """Rewrites a record whose message or traceback holds a registered secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class KeyValueFormatter(logging.Formatter):
    """``time=... level=... logger=... [run= invoice= export=] message=...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"time={stamp}.{int(record.msecs):03d}Z",
            f"level={record.levelname}",
            f"logger={record.name}",
        ]
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                parts.append(f"{name}={quote(str(value))}")
        parts.append(f"message={quote(record.getMessage())}")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            parts.append(f"exc={quote(record.exc_text)}")
        return redact(" ".join(parts))


def quote(value: str) -> str:
    """``value`` as is when it is a plain word, else in double quotes with escapes."""
    if value and all(c.isprintable() and c not in ' "=\\' for c in value):
        return value
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return '"' + "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped) + '"'


def configure_logging(level: int | str = logging.INFO, *, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (stderr) as one ``key=value`` line."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "heeros_structured", False)]:
        root.removeHandler(old)
    handler.heeros_structured = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


__all__ = [
    "KeyValueFormatter",
    "RedactSecrets",
    "configure_logging",
    "quote",
    "redact",
    "register_secret",
    "url_without_password",
]
