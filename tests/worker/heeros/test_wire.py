"""The Heeros wire format: request shapes and the reading of every answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from worker.config.starttext import SendOptions
from worker.errors import ConfigError, InvoiceError, ValidationEntry
from worker.heeros.httpvalues import DEFAULT_RETRY_AFTER, parse_retry_after
from worker.heeros.remote import RemoteState, RemoteStatus
from worker.heeros.wire import (
    STATUS_STATES,
    Failure,
    FailureKind,
    WireRequest,
    auth_headers,
    classify,
    find_request,
    heeros_encoding,
    invoice_path,
    login_request,
    options_object,
    parse_accepted,
    parse_found,
    parse_login,
    parse_status,
    send_request,
    status_request,
)

DOCUMENT = '<?xml version="1.0"?><Finvoice Version="3.0"><Name>Bär €</Name></Finvoice>'


def _send(**overrides: Any) -> tuple[WireRequest, dict[str, Any]]:
    arguments: dict[str, Any] = {
        "office_code": "00079",
        "customer_code": "0042",
        "invoice_number": "12345",
        "document": DOCUMENT.encode("utf-8"),
        "encoding": "UTF-8",
        "options": SendOptions(),
        "idempotency_key": "inv-12345-v1",
    }
    arguments.update(overrides)
    request = send_request(**arguments)
    assert request.content is not None
    return request, json.loads(request.content)


# Requests -----------------------------------------------------------------------------


def test_options_default_is_the_contract_example() -> None:
    assert options_object(SendOptions()) == {
        "moveOnlyToLedger": False,
        "sendToCustomer": False,
        "createCustomer": True,
        "updateCustomer": True,
        "createProduct": True,
        "updateProduct": True,
        "createAccountingObjects": True,
    }


@pytest.mark.parametrize(
    ("field", "wire_name", "value"),
    [
        ("move_only_to_ledger", "moveOnlyToLedger", True),
        ("send_to_customer", "sendToCustomer", True),
        ("create_customer", "createCustomer", False),
        ("update_customer", "updateCustomer", False),
        ("create_product", "createProduct", False),
        ("update_product", "updateProduct", False),
        ("create_accounting_objects", "createAccountingObjects", False),
    ],
)
def test_each_option_maps_to_its_camel_case_name(field: str, wire_name: str, value: bool) -> None:
    wire = options_object(SendOptions(**{field: value}))
    assert wire[wire_name] is value
    others = {k: v for k, v in wire.items() if k != wire_name}
    defaults = {k: v for k, v in options_object(SendOptions()).items() if k != wire_name}
    assert others == defaults


def test_send_request_shape() -> None:
    request, body = _send(options=SendOptions(send_to_customer=True, create_product=False))
    assert request.method == "POST"
    assert request.path == "/sales-invoices"
    assert dict(request.params) == {"tt": "00079", "la": "0042"}
    assert request.headers["Idempotency-Key"] == "inv-12345-v1"
    assert request.headers["Content-Type"] == "application/json"
    assert body == {
        "externalReference": "12345",
        "format": "FINVOICE_3_0",
        "encoding": "UTF-8",
        "options": {
            "moveOnlyToLedger": False,
            "sendToCustomer": True,
            "createCustomer": True,
            "updateCustomer": True,
            "createProduct": False,
            "updateProduct": True,
            "createAccountingObjects": True,
        },
        "content": DOCUMENT,
    }


def test_send_request_decodes_iso_8859_15() -> None:
    document = DOCUMENT.encode("iso8859-15")
    assert b"B\xe4r \xa4" in document
    _, body = _send(document=document, encoding="ISO-8859-15")
    assert body["encoding"] == "ISO-8859-15"
    assert body["content"] == DOCUMENT
    assert "Bär €" in body["content"]


def test_send_request_drops_a_utf8_byte_order_mark() -> None:
    _, body = _send(document=b"\xef\xbb\xbf" + DOCUMENT.encode("utf-8"))
    assert body["content"] == DOCUMENT


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("UTF-8", "UTF-8"),
        ("utf8", "UTF-8"),
        ("iso-8859-15", "ISO-8859-15"),
        ("latin9", "ISO-8859-15"),
    ],
)
def test_encoding_names_are_normalised(given: str, name: str) -> None:
    assert heeros_encoding(given)[0] == name


@pytest.mark.parametrize("given", ["ISO-8859-1", "UTF-16", "no-such-codec", ""])
def test_other_encodings_are_config_errors(given: str) -> None:
    with pytest.raises(ConfigError, match="UTF-8 or ISO-8859-15"):
        heeros_encoding(given)


def test_a_document_not_in_its_encoding_is_an_invoice_error() -> None:
    with pytest.raises(InvoiceError, match=r"invoice 12345: .* not valid UTF-8") as caught:
        _send(document=DOCUMENT.encode("iso8859-15"))
    assert caught.value.invoice_number == "12345"
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize("key", ["", "with space", "ä-key", "x" * 256])
def test_an_unsendable_idempotency_key_is_an_invoice_error(key: str) -> None:
    with pytest.raises(InvoiceError, match="idempotency key"):
        _send(idempotency_key=key)


def test_an_empty_invoice_number_is_an_invoice_error() -> None:
    with pytest.raises(InvoiceError, match="invoice number is empty"):
        _send(invoice_number=" ")


def test_login_request_shape_and_repr() -> None:
    request = login_request("opter-user", "s3cr3t-KEY")
    assert (request.method, request.path, dict(request.params)) == ("POST", "/auth/login", {})
    assert request.content is not None
    assert json.loads(request.content) == {"username": "opter-user", "apiKey": "s3cr3t-KEY"}
    assert "s3cr3t-KEY" not in repr(request)


def test_status_request_escapes_the_id() -> None:
    request = status_request(office_code="00079", customer_code="007", invoice_id="a/b c")
    assert request.method == "GET"
    assert request.path == "/sales-invoices/a%2Fb%20c"
    assert dict(request.params) == {"tt": "00079", "la": "007"}
    assert invoice_path("H-1") == "/sales-invoices/H-1"


def test_status_request_refuses_an_empty_id() -> None:
    with pytest.raises(InvoiceError, match="invoice id is empty"):
        status_request(office_code="1", customer_code="2", invoice_id="")


def test_find_request_shape() -> None:
    request = find_request(office_code="00079", customer_code="0042", invoice_number="555")
    assert (request.method, request.path) == ("GET", "/sales-invoices")
    assert dict(request.params) == {"externalReference": "555", "tt": "00079", "la": "0042"}


def test_auth_headers_carry_the_ltpa_cookie() -> None:
    assert auth_headers("tok-1") == {"Cookie": "LtpaToken=tok-1"}


# Answers ------------------------------------------------------------------------------


def test_parse_login() -> None:
    session = parse_login(b'{"token": "abc+/=", "expiresIn": 3600}')
    assert session is not None
    assert (session.token, session.expires_in) == ("abc+/=", 3600.0)
    assert "abc+/=" not in repr(session)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"token": ""}', b'{"token": 5}', b'{"token": "a;b"}', b"\xff"],
)
def test_parse_login_without_a_usable_token(body: bytes) -> None:
    assert parse_login(body) is None


@pytest.mark.parametrize("expires", ['"soon"', "-5", "0", "true", "null"])
def test_parse_login_ignores_an_odd_lifetime(expires: str) -> None:
    session = parse_login(f'{{"token": "t", "expiresIn": {expires}}}'.encode())
    assert session is not None
    assert session.expires_in is None


def test_parse_accepted() -> None:
    assert parse_accepted(b'{"invoiceId": "H-1", "status": "RECEIVED"}') == "H-1"
    assert parse_accepted(b'{"status": "RECEIVED"}') is None
    assert parse_accepted(b"<html>") is None


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("RECEIVED", RemoteState.PENDING),
        ("PROCESSING", RemoteState.PENDING),
        ("COMPLETE", RemoteState.CONFIRMED),
        ("SENDING", RemoteState.CONFIRMED),
        ("ARCHIVED", RemoteState.CONFIRMED),
        ("TO_LEDGER", RemoteState.CONFIRMED),
        ("INCOMPLETE", RemoteState.INCOMPLETE),
    ],
)
def test_parse_status_maps_each_name(name: str, state: RemoteState) -> None:
    body = json.dumps(
        {"invoiceId": "H-9", "status": name, "errorCode": None, "errorMessage": None}
    ).encode()
    assert parse_status(body, invoice_id="H-9") == RemoteStatus("H-9", state, name, None, None)


def test_parse_status_error_carries_code_and_message() -> None:
    body = b'{"invoiceId": "H-9", "status": "ERROR", "errorCode": "E12", "errorMessage": "Bad"}'
    assert parse_status(body, invoice_id="H-9") == RemoteStatus(
        "H-9", RemoteState.ERROR, "ERROR", "E12", "Bad"
    )


def test_every_contract_status_name_is_mapped() -> None:
    assert set(STATUS_STATES) == {
        "RECEIVED",
        "PROCESSING",
        "COMPLETE",
        "SENDING",
        "ARCHIVED",
        "TO_LEDGER",
        "INCOMPLETE",
        "ERROR",
    }


def test_parse_status_unknown_name_is_pending_and_id_falls_back() -> None:
    status = parse_status(b'{"status": "QUEUED"}', invoice_id="H-3")
    assert status == RemoteStatus("H-3", RemoteState.PENDING, "QUEUED", None, None)


@pytest.mark.parametrize("body", [b"", b"{}", b'{"status": null}', b"[1]", b"oops"])
def test_parse_status_without_a_status_is_none(body: bytes) -> None:
    assert parse_status(body, invoice_id="H-3") is None


def test_parse_found() -> None:
    body = b'{"items": [{"invoiceId": "H-5", "status": "COMPLETE"}]}'
    assert parse_found(body) == [RemoteStatus("H-5", RemoteState.CONFIRMED, "COMPLETE")]
    assert parse_found(b'{"items": []}') == []


@pytest.mark.parametrize(
    "body", [b"", b"{}", b'{"items": {}}', b'{"items": [1]}', b'{"items": [{"status": "X"}]}']
)
def test_parse_found_unreadable_is_none(body: bytes) -> None:
    assert parse_found(body) is None


# classify -----------------------------------------------------------------------------


@pytest.mark.parametrize("status_code", [200, 201, 202, 204])
def test_classify_2xx_is_success(status_code: int) -> None:
    assert classify(status_code, {}, b"anything") is None


def test_classify_401() -> None:
    body = b'{"errorCode": "AUTH_FAILED", "errorMessage": "Bad key"}'
    assert classify(401, {}, body) == Failure(
        FailureKind.SESSION_REJECTED, 401, "AUTH_FAILED", "Bad key"
    )
    assert classify(401, {}, b"") == Failure(
        FailureKind.SESSION_REJECTED, 401, "HTTP_401", "Unauthorized"
    )


def test_classify_auth_failed_on_another_4xx_is_a_session_refusal() -> None:
    failure = classify(403, {}, b'{"errorCode": "AUTH_FAILED", "errorMessage": "expired"}')
    assert failure is not None
    assert failure.kind is FailureKind.SESSION_REJECTED


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({}, DEFAULT_RETRY_AFTER),
        ({"Retry-After": "soon"}, DEFAULT_RETRY_AFTER),
    ],
)
def test_classify_429(headers: dict[str, str], retry_after: float) -> None:
    failure = classify(429, headers, b"")
    assert failure is not None
    assert (failure.kind, failure.retry_after, failure.code) == (
        FailureKind.RATE_LIMITED,
        retry_after,
        "HTTP_429",
    )


@pytest.mark.parametrize("status_code", [500, 502, 503, 504, 599])
def test_classify_5xx_is_unavailable(status_code: int) -> None:
    failure = classify(status_code, {}, b"<html>down</html>")
    assert failure is not None
    assert (failure.kind, failure.status_code, failure.code) == (
        FailureKind.UNAVAILABLE,
        status_code,
        f"HTTP_{status_code}",
    )


def test_classify_409_duplicate() -> None:
    body = b'{"errorCode": "DUPLICATE", "errorMessage": "Already there", "invoiceId": "H-2"}'
    assert classify(409, {}, body) == Failure(
        FailureKind.DUPLICATE, 409, "DUPLICATE", "Already there", invoice_id="H-2"
    )


def test_classify_409_without_a_body_is_a_duplicate_without_id() -> None:
    assert classify(409, {}, b"") == Failure(FailureKind.DUPLICATE, 409, "DUPLICATE", "Conflict")


def test_classify_409_with_another_code_is_refused() -> None:
    failure = classify(409, {}, b'{"errorCode": "LOCKED", "errorMessage": "Period closed"}')
    assert failure == Failure(FailureKind.REFUSED, 409, "LOCKED", "Period closed")


def test_classify_400_validation_keeps_every_entry() -> None:
    body = json.dumps(
        {
            "errorCode": "VALIDATION_FAILED",
            "errorMessage": "2 errors",
            "validationErrors": [
                {"path": "/Finvoice/BuyerPartyDetails", "message": "unknown buyer"},
                {"path": "/Finvoice/InvoiceRow[1]", "message": "unknown product"},
                "loose text",
                {"path": 7},
            ],
        }
    ).encode()
    failure = classify(400, {}, body)
    assert failure is not None
    assert (failure.kind, failure.code, failure.message) == (
        FailureKind.VALIDATION,
        "VALIDATION_FAILED",
        "2 errors",
    )
    assert failure.entries == (
        ValidationEntry("/Finvoice/BuyerPartyDetails", "unknown buyer"),
        ValidationEntry("/Finvoice/InvoiceRow[1]", "unknown product"),
        ValidationEntry("", "loose text"),
        ValidationEntry("7", ""),
    )


def test_classify_400_validation_with_odd_entries_has_none() -> None:
    failure = classify(400, {}, b'{"errorCode": "VALIDATION_FAILED", "validationErrors": "x"}')
    assert failure is not None
    assert (failure.kind, failure.entries) == (FailureKind.VALIDATION, ())


def test_classify_400_other_code_is_refused() -> None:
    failure = classify(400, {}, b'{"errorCode": "BAD_TENANT", "errorMessage": "Unknown la"}')
    assert failure == Failure(FailureKind.REFUSED, 400, "BAD_TENANT", "Unknown la")


def test_classify_404() -> None:
    body = b'{"errorCode": "NOT_FOUND", "errorMessage": "No invoice H-0"}'
    assert classify(404, {}, body) == Failure(
        FailureKind.REFUSED, 404, "NOT_FOUND", "No invoice H-0"
    )
    assert classify(404, {}, b"<html>nginx</html>") == Failure(
        FailureKind.REFUSED, 404, "HTTP_404", "Not Found"
    )


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"\xff\xfe garbage", "HTTP_422", "Unprocessable Entity"),
        (b'["errorCode"]', "HTTP_422", "Unprocessable Entity"),
        (b'{"errorCode": 17, "errorMessage": ["x"]}', "17", "Unprocessable Entity"),
        (b'{"errorCode": "  ", "errorMessage": "  why  "}', "HTTP_422", "why"),
        (b"[" * 100_000, "HTTP_422", "Unprocessable Entity"),
    ],
)
def test_classify_is_tolerant_of_odd_bodies(body: bytes, code: str, message: str) -> None:
    assert classify(422, {}, body) == Failure(FailureKind.REFUSED, 422, code, message)


def test_classify_unknown_status_code_and_long_message() -> None:
    body = json.dumps({"errorCode": "X", "errorMessage": "m" * 5000}).encode()
    failure = classify(499, {}, body)
    assert failure is not None
    assert (failure.kind, failure.code, len(failure.message)) == (FailureKind.REFUSED, "X", 1000)
    assert classify(499, {}, b"") == Failure(FailureKind.REFUSED, 499, "HTTP_499", "HTTP 499")


# Retry-After --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 0.25 ", 0.25),
        ("0", 0.0),
        (None, DEFAULT_RETRY_AFTER),
        ("", DEFAULT_RETRY_AFTER),
        ("-3", DEFAULT_RETRY_AFTER),
        ("nan", DEFAULT_RETRY_AFTER),
        ("inf", DEFAULT_RETRY_AFTER),
        ("1e999", DEFAULT_RETRY_AFTER),
        ("tomorrow", DEFAULT_RETRY_AFTER),
    ],
)
def test_parse_retry_after_seconds(value: str | None, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0
    assert DEFAULT_RETRY_AFTER == 1.0
