"""Tolerant readers of the values an HTTP answer is made of: JSON, headers, ``Retry-After``.

Nothing here knows a Heeros path, field or header name; that is
:mod:`worker.heeros.wire`'s business. Nothing here raises on a value that is
not what it should be either: a reader answers ``None``, an empty object or a
default instead, so a proxy's HTML error page reads as an answer without content.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

DEFAULT_RETRY_AFTER = 1.0
"""Seconds to wait after a 429 whose ``Retry-After`` is missing or unreadable."""

MAX_TEXT = 1000
"""The most characters :func:`text_value` keeps of a text."""


def json_object(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``; an empty dict for anything else."""
    if not body:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def text_value(value: object) -> str | None:
    """A non-empty string (or number) from a JSON value, capped in length; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:MAX_TEXT] if value else None


def positive_number(value: object) -> float | None:
    """A finite number above zero from a JSON value; else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0 else None


def reason_phrase(status_code: int) -> str:
    """The standard reason phrase of an HTTP status (``Not Found``), or ``HTTP <code>``."""
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return f"HTTP {status_code}"


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name``, its case ignored; None when it is absent."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def is_cookie_value(value: str) -> bool:
    """Whether ``value`` can be sent as a cookie's value as it is."""
    # RFC 6265 cookie-octet: visible ASCII but for DQUOTE, comma, semicolon and backslash.
    return bool(value) and all("!" <= c <= "~" and c not in '",;\\' for c in value)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP-date.

    A missing, negative or unreadable value gives ``DEFAULT_RETRY_AFTER``; a date
    already past gives 0.
    """
    if value is None or not value.strip():
        return DEFAULT_RETRY_AFTER
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return DEFAULT_RETRY_AFTER
    return seconds


__all__ = [
    "DEFAULT_RETRY_AFTER",
    "MAX_TEXT",
    "header_value",
    "is_cookie_value",
    "json_object",
    "parse_retry_after",
    "positive_number",
    "reason_phrase",
    "text_value",
]
