"""The text a user sees when an invoice's export fails.

The five Heeros texts are fixed by the Opter documentation, word for word,
placeholders included; :func:`user_message` is the one place that picks and
fills them.
"""

from __future__ import annotations

from worker.errors import (
    ConfirmationTimeout,
    ExportError,
    HeerosRateLimited,
    HeerosRefusedError,
    HeerosUnavailable,
    HeerosValidationError,
    InvoiceIncomplete,
    LoginError,
)

MESSAGE_LOGIN_FAILED = (
    "Could not log into Heeros. Either the username/password is incorrect or it is not"
    " possible to connect to Heeros at the moment. Please try again in a few minutes."
)
"""Message 1: Heeros refused the login."""

MESSAGE_SEND_REFUSED = (
    "It was not possible to send the invoice to Heeros. Error code from Heeros: {0}."
    " Error message from Heeros: {1}"
)
"""Message 2: Heeros refused the invoice; {0} is its error code, {1} its message."""

MESSAGE_INCOMPLETE = (
    "The invoice has been sent but it could not be processed in Heeros because it is"
    " incomplete. Please check incomplete invoices in Heeros. Invoice ID in Heeros: {0}."
)
"""Message 3: Heeros holds the invoice as incomplete; {0} is the Heeros invoice id."""

MESSAGE_NOT_CONFIRMED = (
    "The invoice has been sent but it could not be confirmed within the time limit."
    " Please check incomplete invoices in Heeros to see if it has been registered and its"
    " current status. Invoice ID in Heeros: {0}."
)
"""Message 4: no confirmation before the deadline; {0} is the Heeros invoice id."""

MESSAGE_VALIDATION = (
    "It was not possible to send the invoice {1} to Heeros due to validation errors."
    " Number of errors: {2}. Please contact Opter support."
)
"""Message 5: validation errors; {1} is the invoice number, {2} the number of errors."""

MESSAGE_LOCAL_FAILURE = "The invoice {0} could not be exported: {1}"
"""A failure found before Heeros was asked; {0} is the invoice number, {1} the reason."""

CODE_UNAVAILABLE = "UNAVAILABLE"
CODE_RATE_LIMITED = "RATE_LIMITED"


def validation_message(invoice_number: str, count: int) -> str:
    """Message 5 for an invoice number and a number of validation errors."""
    return MESSAGE_VALIDATION.format("", invoice_number, count)


def user_message(error: ExportError, *, invoice_number: str) -> str:
    """The text a user sees for ``error``, raised while exporting ``invoice_number``."""
    if isinstance(error, LoginError):
        return MESSAGE_LOGIN_FAILED
    if isinstance(error, HeerosValidationError):
        return validation_message(invoice_number, len(error.entries))
    if isinstance(error, HeerosRefusedError):
        return MESSAGE_SEND_REFUSED.format(error.code, error.heeros_message)
    if isinstance(error, InvoiceIncomplete):
        return MESSAGE_INCOMPLETE.format(error.invoice_id)
    if isinstance(error, ConfirmationTimeout):
        return MESSAGE_NOT_CONFIRMED.format(error.invoice_id)
    if isinstance(error, HeerosUnavailable):
        code = CODE_UNAVAILABLE if error.status_code is None else f"HTTP_{error.status_code}"
        return MESSAGE_SEND_REFUSED.format(code, str(error))
    if isinstance(error, HeerosRateLimited):
        return MESSAGE_SEND_REFUSED.format(CODE_RATE_LIMITED, str(error))
    # The local failures (InvoiceError, TransformError, SchemaError, ConfigError) already
    # name the field or line at fault; any other ExportError is worded the same way.
    return MESSAGE_LOCAL_FAILURE.format(invoice_number, str(error) or type(error).__name__)


__all__ = [
    "CODE_RATE_LIMITED",
    "CODE_UNAVAILABLE",
    "MESSAGE_INCOMPLETE",
    "MESSAGE_LOCAL_FAILURE",
    "MESSAGE_LOGIN_FAILED",
    "MESSAGE_NOT_CONFIRMED",
    "MESSAGE_SEND_REFUSED",
    "MESSAGE_VALIDATION",
    "user_message",
    "validation_message",
]
