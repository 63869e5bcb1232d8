"""Heeros's wire format: every path, field, header and status name in one place.

Heeros does not publish its partner API; the format here follows the project's
contract page. Nothing outside this module knows a Heeros path, JSON field,
header, cookie or status name, so adapting to the real API changes this file
only. Everything here is a pure function over bytes and plain values: requests
are described as :class:`WireRequest`, answers are read into the project's own
types (:class:`~worker.heeros.remote.RemoteStatus`, :class:`Failure`,
:class:`LoginSession`).

The answer parsers never raise on a body that is not what the contract says:
success parsers return ``None`` and :func:`classify` falls back to the HTTP
status, so a proxy's HTML error page still maps to a sensible failure. The
tolerant reading of JSON and header values they build on, which knows no Heeros
name, is :mod:`worker.heeros.httpvalues`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from worker.config.starttext import SendOptions
from worker.documents.encodings import encoding_named, python_codec
from worker.errors import ConfigError, InvoiceError, ValidationEntry
from worker.heeros.httpvalues import (
    DEFAULT_RETRY_AFTER,
    header_value,
    is_cookie_value,
    json_object,
    parse_retry_after,
    positive_number,
    reason_phrase,
    text_value,
)
from worker.heeros.remote import RemoteState, RemoteStatus

LOGIN_PATH = "/auth/login"
INVOICES_PATH = "/sales-invoices"

SESSION_COOKIE = "LtpaToken"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRY_AFTER_HEADER = "Retry-After"

OFFICE_PARAM = "tt"
CUSTOMER_PARAM = "la"
REFERENCE_PARAM = "externalReference"

DOCUMENT_FORMAT = "FINVOICE_3_0"

ERROR_DUPLICATE = "DUPLICATE"
ERROR_VALIDATION = "VALIDATION_FAILED"
ERROR_AUTH = "AUTH_FAILED"
ERROR_NOT_FOUND = "NOT_FOUND"

_MAX_IDEMPOTENCY_KEY = 255

_JSON_HEADERS: Mapping[str, str] = {
    "Content-Type": "application/json",
    "Accept": "application/json",
}
_ACCEPT_JSON: Mapping[str, str] = {"Accept": "application/json"}


# The camelCase option names Heeros takes, in the order of the contract.
_OPTION_NAMES: tuple[tuple[str, str], ...] = (
    ("moveOnlyToLedger", "move_only_to_ledger"),
    ("sendToCustomer", "send_to_customer"),
    ("createCustomer", "create_customer"),
    ("updateCustomer", "update_customer"),
    ("createProduct", "create_product"),
    ("updateProduct", "update_product"),
    ("createAccountingObjects", "create_accounting_objects"),
)


STATUS_STATES: Mapping[str, RemoteState] = {
    "RECEIVED": RemoteState.PENDING,
    "PROCESSING": RemoteState.PENDING,
    "COMPLETE": RemoteState.CONFIRMED,
    "SENDING": RemoteState.CONFIRMED,
    "ARCHIVED": RemoteState.CONFIRMED,
    "TO_LEDGER": RemoteState.CONFIRMED,
    "INCOMPLETE": RemoteState.INCOMPLETE,
    "ERROR": RemoteState.ERROR,
}
"""Heeros's status names and the state each one means.

A name not listed is taken as still pending: the caller keeps asking until its
confirmation deadline, which is the safe reading of a state it cannot judge.
"""


@dataclass(frozen=True)
class LoginSession:
    """A login's answer: the session token and its lifetime in seconds, if given."""

    token: str = field(repr=False)
    expires_in: float | None


@dataclass(frozen=True)
class WireRequest:
    """One HTTP request to Heeros, relative to the base URL, without the session."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    # The login body holds the client key: keep it out of every repr.
    content: bytes | None = field(default=None, repr=False)


class FailureKind(StrEnum):
    """What a non-2xx answer means for the caller."""

    SESSION_REJECTED = "session_rejected"
    """401 or AUTH_FAILED: the session token (at login, the credentials) was refused."""
    RATE_LIMITED = "rate_limited"
    """429: wait ``retry_after`` seconds."""
    UNAVAILABLE = "unavailable"
    """5xx: Heeros is down or overloaded; worth another try."""
    DUPLICATE = "duplicate"
    """409: the invoice is already in Heeros (``invoice_id`` when Heeros names it)."""
    VALIDATION = "validation"
    """400 with validation errors: Heeros refused the invoice's content."""
    REFUSED = "refused"
    """Any other answer: Heeros refused the request for good."""


@dataclass(frozen=True)
class Failure:
    """A non-2xx answer from Heeros, read as far as its body allows."""

    kind: FailureKind
    status_code: int
    code: str
    message: str
    invoice_id: str | None = None
    entries: tuple[ValidationEntry, ...] = ()
    retry_after: float = DEFAULT_RETRY_AFTER


# Requests -----------------------------------------------------------------------------


def tenant_params(office_code: str, customer_code: str) -> dict[str, str]:
    """The query parameters that choose the tenant; codes stay strings (``00079``)."""
    return {OFFICE_PARAM: office_code, CUSTOMER_PARAM: customer_code}


def auth_headers(token: str) -> dict[str, str]:
    """The headers that carry a session token on a call after login."""
    return {"Cookie": f"{SESSION_COOKIE}={token}"}


def invoice_path(invoice_id: str) -> str:
    """The path of one invoice; the id is escaped so it stays one path segment."""
    return f"{INVOICES_PATH}/{quote(invoice_id, safe='')}"


def options_object(options: SendOptions) -> dict[str, bool]:
    """The send options as Heeros's camelCase ``options`` object."""
    return {wire_name: bool(getattr(options, name)) for wire_name, name in _OPTION_NAMES}


def heeros_encoding(encoding: str) -> tuple[str, str]:
    """The encoding name Heeros takes and the codec to decode with, for ``encoding``.

    Raises ConfigError for an encoding Heeros does not take (UTF-8 and ISO-8859-15 only).
    """
    try:
        named = encoding_named(encoding)
    except ConfigError as exc:
        raise ConfigError(
            f"document encoding {encoding!r} is not accepted by Heeros: use UTF-8 or ISO-8859-15"
        ) from exc
    # utf-8-sig drops a byte-order mark, which has no place inside a JSON string.
    return named, python_codec(named)


def login_request(username: str, api_key: str) -> WireRequest:
    """The login request for a client identity and key."""
    body = {"username": username, "apiKey": api_key}
    return WireRequest("POST", LOGIN_PATH, {}, _JSON_HEADERS, _dump(body))


def send_request(
    *,
    office_code: str,
    customer_code: str,
    invoice_number: str,
    document: bytes,
    encoding: str,
    options: SendOptions,
    idempotency_key: str,
) -> WireRequest:
    """The request that sends one Finvoice document.

    Raises InvoiceError when the document is not text in ``encoding`` or the
    invoice number or idempotency key cannot be sent, and ConfigError for an
    encoding Heeros does not take.
    """
    if not invoice_number.strip():
        raise InvoiceError("the invoice number is empty", invoice_number=invoice_number)
    if not _is_header_token(idempotency_key):
        raise InvoiceError(
            f"invoice {invoice_number}: the idempotency key must be 1 to"
            f" {_MAX_IDEMPOTENCY_KEY} visible ASCII characters",
            invoice_number=invoice_number,
        )
    name, codec = heeros_encoding(encoding)
    try:
        content = document.decode(codec)
    except UnicodeDecodeError as exc:
        raise InvoiceError(
            f"invoice {invoice_number}: the Finvoice document is not valid {name}"
            f" ({exc.reason} at byte {exc.start})",
            invoice_number=invoice_number,
        ) from exc
    body = {
        "externalReference": invoice_number,
        "format": DOCUMENT_FORMAT,
        "encoding": name,
        "options": options_object(options),
        "content": content,
    }
    headers = {**_JSON_HEADERS, IDEMPOTENCY_HEADER: idempotency_key}
    return WireRequest(
        "POST", INVOICES_PATH, tenant_params(office_code, customer_code), headers, _dump(body)
    )


def status_request(*, office_code: str, customer_code: str, invoice_id: str) -> WireRequest:
    """The request for one invoice's processing status.

    Raises InvoiceError for an empty invoice id, which would name the whole collection.
    """
    if not invoice_id.strip():
        raise InvoiceError("the Heeros invoice id is empty")
    return WireRequest(
        "GET", invoice_path(invoice_id), tenant_params(office_code, customer_code), _ACCEPT_JSON
    )


def find_request(*, office_code: str, customer_code: str, invoice_number: str) -> WireRequest:
    """The request that looks an invoice up by the source system's invoice number."""
    params = {REFERENCE_PARAM: invoice_number, **tenant_params(office_code, customer_code)}
    return WireRequest("GET", INVOICES_PATH, params, _ACCEPT_JSON)


# Answers ------------------------------------------------------------------------------


def parse_login(body: bytes) -> LoginSession | None:
    """The session of a 2xx login answer, or None when it holds no usable token."""
    data = json_object(body)
    token = data.get("token")
    if not isinstance(token, str) or not is_cookie_value(token):
        return None
    expires_in = positive_number(data.get("expiresIn"))
    return LoginSession(token=token, expires_in=expires_in)


def parse_accepted(body: bytes) -> str | None:
    """The Heeros invoice id of a 2xx send answer, or None when it names none."""
    return text_value(json_object(body).get("invoiceId"))


def parse_status(body: bytes, *, invoice_id: str) -> RemoteStatus | None:
    """The status in a 2xx status answer for ``invoice_id``, or None when it has none."""
    return _status(json_object(body), fallback_id=invoice_id)


def parse_found(body: bytes) -> list[RemoteStatus] | None:
    """The invoices of a 2xx look-up answer (maybe none), or None when it is unreadable."""
    items = json_object(body).get("items")
    if not isinstance(items, list):
        return None
    found: list[RemoteStatus] = []
    for item in items:
        status = _status(item, fallback_id=None) if isinstance(item, dict) else None
        if status is None:
            return None
        found.append(status)
    return found


def classify(status_code: int, headers: Mapping[str, str], body: bytes) -> Failure | None:
    """What an answer means: None for 2xx, otherwise the failure it reports."""
    if 200 <= status_code < 300:
        return None
    data = json_object(body)
    declared = text_value(data.get("errorCode"))
    code = declared or f"HTTP_{status_code}"
    message = text_value(data.get("errorMessage")) or reason_phrase(status_code)
    if status_code == 401 or (declared == ERROR_AUTH and 400 <= status_code < 500):
        return Failure(FailureKind.SESSION_REJECTED, status_code, code, message)
    if status_code == 429:
        retry_after = parse_retry_after(header_value(headers, RETRY_AFTER_HEADER))
        return Failure(
            FailureKind.RATE_LIMITED, status_code, code, message, retry_after=retry_after
        )
    if status_code >= 500:
        return Failure(FailureKind.UNAVAILABLE, status_code, code, message)
    if status_code == 409 and declared in (None, ERROR_DUPLICATE):
        invoice_id = text_value(data.get("invoiceId"))
        return Failure(
            FailureKind.DUPLICATE, status_code, ERROR_DUPLICATE, message, invoice_id=invoice_id
        )
    raw_entries = data.get("validationErrors")
    if status_code == 400 and (
        declared == ERROR_VALIDATION or (declared is None and isinstance(raw_entries, list))
    ):
        items = raw_entries if isinstance(raw_entries, list) else []
        entries = tuple(_entry(item) for item in items if item is not None)
        return Failure(
            FailureKind.VALIDATION, status_code, ERROR_VALIDATION, message, entries=entries
        )
    return Failure(FailureKind.REFUSED, status_code, code, message)


# Helpers ------------------------------------------------------------------------------


def _dump(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _status(data: dict[str, Any], *, fallback_id: str | None) -> RemoteStatus | None:
    heeros_status = text_value(data.get("status"))
    invoice_id = text_value(data.get("invoiceId")) or fallback_id
    if heeros_status is None or invoice_id is None:
        return None
    return RemoteStatus(
        invoice_id=invoice_id,
        state=STATUS_STATES.get(heeros_status.upper(), RemoteState.PENDING),
        heeros_status=heeros_status,
        error_code=text_value(data.get("errorCode")),
        error_message=text_value(data.get("errorMessage")),
    )


def _entry(item: object) -> ValidationEntry:
    if isinstance(item, dict):
        return ValidationEntry(
            path=text_value(item.get("path")) or "", message=text_value(item.get("message")) or ""
        )
    return ValidationEntry(path="", message=text_value(item) or "")


def _is_header_token(value: str) -> bool:
    return 0 < len(value) <= _MAX_IDEMPOTENCY_KEY and all("!" <= c <= "~" for c in value)


__all__ = [
    "CUSTOMER_PARAM",
    "DOCUMENT_FORMAT",
    "ERROR_AUTH",
    "ERROR_DUPLICATE",
    "ERROR_NOT_FOUND",
    "ERROR_VALIDATION",
    "IDEMPOTENCY_HEADER",
    "INVOICES_PATH",
    "LOGIN_PATH",
    "OFFICE_PARAM",
    "REFERENCE_PARAM",
    "RETRY_AFTER_HEADER",
    "SESSION_COOKIE",
    "STATUS_STATES",
    "Failure",
    "FailureKind",
    "LoginSession",
    "WireRequest",
    "auth_headers",
    "classify",
    "find_request",
    "heeros_encoding",
    "invoice_path",
    "login_request",
    "options_object",
    "parse_accepted",
    "parse_found",
    "parse_login",
    "parse_status",
    "send_request",
    "status_request",
    "tenant_params",
]
