"""The error tree: each error's kind, metrics code and the text a user sees, word for word."""

from __future__ import annotations

from typing import Any

import pytest

from worker.errors import (
    MESSAGE_INCOMPLETE,
    MESSAGE_LOGIN_FAILED,
    MESSAGE_NOT_CONFIRMED,
    MESSAGE_SEND_REFUSED,
    MESSAGE_VALIDATION,
    ConfigError,
    ConfirmationTimeout,
    ExportError,
    HeerosRateLimited,
    HeerosRefusedError,
    HeerosUnavailable,
    HeerosValidationError,
    InvoiceError,
    InvoiceIncomplete,
    Kind,
    LoginError,
    PermanentError,
    SchemaError,
    TransformError,
    TransientError,
    ValidationEntry,
    validation_message,
)

# The contract's texts, copied here on purpose: a change to a template must fail a test.
CONTRACT_1 = (
    "Could not log into Heeros. Either the username/password is incorrect or it is not "
    "possible to connect to Heeros at the moment. Please try again in a few minutes."
)
CONTRACT_2 = (
    "It was not possible to send the invoice to Heeros. Error code from Heeros: {0}. "
    "Error message from Heeros: {1}"
)
CONTRACT_3 = (
    "The invoice has been sent but it could not be processed in Heeros because it is "
    "incomplete. Please check incomplete invoices in Heeros. Invoice ID in Heeros: {0}."
)
CONTRACT_4 = (
    "The invoice has been sent but it could not be confirmed within the time limit. "
    "Please check incomplete invoices in Heeros to see if it has been registered and its "
    "current status. Invoice ID in Heeros: {0}."
)
CONTRACT_5 = (
    "It was not possible to send the invoice {1} to Heeros due to validation errors. "
    "Number of errors: {2}. Please contact Opter support."
)


def test_templates_are_the_contract_texts() -> None:
    assert MESSAGE_LOGIN_FAILED == CONTRACT_1
    assert MESSAGE_SEND_REFUSED == CONTRACT_2
    assert MESSAGE_INCOMPLETE == CONTRACT_3
    assert MESSAGE_NOT_CONFIRMED == CONTRACT_4
    assert MESSAGE_VALIDATION == CONTRACT_5


def test_login_error_gives_message_1() -> None:
    assert LoginError("anything").user_message("1001") == CONTRACT_1


def test_refused_gives_message_2_with_code_and_message() -> None:
    error = HeerosRefusedError("NOT_FOUND", "No such invoice")
    assert error.user_message("1001") == (
        "It was not possible to send the invoice to Heeros. Error code from Heeros: "
        "NOT_FOUND. Error message from Heeros: No such invoice"
    )


def test_incomplete_gives_message_3_with_the_heeros_id() -> None:
    assert InvoiceIncomplete("H-77").user_message("1001") == (
        "The invoice has been sent but it could not be processed in Heeros because it is "
        "incomplete. Please check incomplete invoices in Heeros. Invoice ID in Heeros: H-77."
    )


def test_confirmation_timeout_gives_message_4_with_the_heeros_id() -> None:
    assert ConfirmationTimeout("H-78").user_message("1001") == (
        "The invoice has been sent but it could not be confirmed within the time limit. "
        "Please check incomplete invoices in Heeros to see if it has been registered and its "
        "current status. Invoice ID in Heeros: H-78."
    )


def test_validation_gives_message_5_with_number_and_count() -> None:
    entries = [ValidationEntry("a", "x"), ValidationEntry("b", "y"), ValidationEntry("c", "z")]
    error = HeerosValidationError("ignored", invoice_number="2002", entries=entries)
    expected = (
        "It was not possible to send the invoice 2002 to Heeros due to validation errors. "
        "Number of errors: 3. Please contact Opter support."
    )
    assert error.user_message("2002") == expected
    assert validation_message("2002", 3) == expected


def test_validation_with_no_entries_counts_zero() -> None:
    error = HeerosValidationError("ignored", invoice_number="2003", entries=[])
    assert "Number of errors: 0." in error.user_message("2003")


def test_heeros_not_reached_is_message_1() -> None:
    # The contract: message 1 covers every failure to reach or log into Heeros.
    error = HeerosUnavailable("Heeros could not be reached (ConnectError)")
    assert error.user_message("1") == CONTRACT_1
    assert error.code == "UNAVAILABLE"


def test_a_login_answered_5xx_is_message_1() -> None:
    error = HeerosUnavailable("Heeros answered the login HTTP 503", status_code=503, at_login=True)
    assert error.user_message("1") == CONTRACT_1
    assert error.code == "HTTP_503"


def test_a_send_answered_5xx_is_message_2_with_the_http_code() -> None:
    error = HeerosUnavailable("Heeros answered HTTP 503", status_code=503)
    assert error.user_message("1") == CONTRACT_2.format("HTTP_503", "Heeros answered HTTP 503")


def test_a_login_answered_429_is_message_1() -> None:
    error = HeerosRateLimited(2.5, at_login=True)
    assert error.user_message("1") == CONTRACT_1
    assert (error.code, error.kind) == ("RATE_LIMITED", Kind.RATE_LIMITED)


def test_rate_limited_uses_code_rate_limited() -> None:
    error = HeerosRateLimited(2.5)
    assert error.user_message("1") == CONTRACT_2.format(
        "RATE_LIMITED", "Heeros asked to slow down for 2.5 s"
    )


@pytest.mark.parametrize(
    "error",
    [
        InvoiceError("invoice 3003: field DueDate is missing", invoice_number="3003"),
        TransformError("XSLT failed at line 4"),
        SchemaError("element Foo not expected", errors=["line 1"]),
        ConfigError("Start text line 2: unknown parameter 'X'"),
    ],
)
def test_local_failures_name_the_invoice_and_the_reason(error: ExportError) -> None:
    assert error.user_message("3003") == (f"The invoice 3003 could not be exported: {error}")


def test_an_unlisted_export_error_still_names_the_invoice() -> None:
    assert PermanentError().user_message("4004") == (
        "The invoice 4004 could not be exported: PermanentError"
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (LoginError("no"), "LOGIN"),
        (HeerosValidationError("v", invoice_number="1", entries=[]), "VALIDATION"),
        (HeerosRefusedError("DUPLICATE_REFERENCE", "twice"), "DUPLICATE_REFERENCE"),
        (HeerosUnavailable("down", status_code=503), "HTTP_503"),
        (HeerosUnavailable("timeout"), "UNAVAILABLE"),
        (HeerosRateLimited(2.0), "RATE_LIMITED"),
        (InvoiceError("bad"), None),
        (ConfirmationTimeout("X"), None),
        (TransientError("redis"), None),
    ],
)
def test_error_codes(error: Any, code: str | None) -> None:
    assert error.code == code


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (LoginError("no"), Kind.LOGIN),
        (HeerosValidationError("v", invoice_number="1", entries=[]), Kind.VALIDATION),
        (HeerosRefusedError("DUPLICATE_REFERENCE", "twice"), Kind.REFUSED),
        (InvoiceError("bad"), Kind.INVOICE),
        (TransformError("xslt"), Kind.TRANSFORM),
        (SchemaError("xsd"), Kind.SCHEMA),
        (ConfigError("toml"), Kind.CONFIG),
        (HeerosUnavailable("down", status_code=503), Kind.UNAVAILABLE),
        (TransientError("redis"), Kind.UNAVAILABLE),
        (HeerosRateLimited(2.0), Kind.RATE_LIMITED),
        (ConfirmationTimeout("X"), Kind.OTHER),
        (PermanentError("other"), Kind.OTHER),
    ],
)
def test_each_error_carries_its_kind(error: ExportError, kind: Kind) -> None:
    assert error.kind is kind
