"""The exporter's one error tree.

Every failure the exporter knows of is an :class:`ExportError`. The split that
drives retries is transient against permanent::

    ExportError
    ├── PermanentError            never retried: the same input fails again
    │   ├── ConfigError           the export configuration or a Start text
    │   ├── InvoiceError          an invoice's data (model, Opter XML)
    │   ├── TransformError        an XSLT transform (compile or apply)
    │   ├── SchemaError           a document not valid against its XSD
    │   ├── LoginError            Heeros refused the credentials
    │   ├── HeerosValidationError Heeros refused the invoice's content
    │   ├── HeerosRefusedError    any other 4xx answer from Heeros
    │   ├── InvoiceIncomplete     Heeros registered the invoice as incomplete
    │   └── ConfirmationTimeout   no confirmation before the deadline
    └── TransientError            worth another try later
        ├── HeerosUnavailable     network error, timeout or 5xx
        ├── HeerosRateLimited     429, with the Retry-After Heeros gave
        └── Throttled             held back by the shared limits on requests to a tenant

Third-party errors (httpx, lxml, redis, pydantic) are wrapped where they are
caught, with ``raise ... from exc``; callers only ever see this tree. No error
text ever holds a client key.

Each class carries what the rest of the code needs to know of it, so nothing
else classifies errors: ``kind`` (the per-run count of failures it is counted
under), ``code`` (the error code it is counted under in the metrics, None for a
failure Heeros had no part in) and :meth:`ExportError.user_message` (the text a
user sees). The five Heeros texts are fixed by the Opter documentation, word for
word, placeholders included.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

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


class Kind(StrEnum):
    """What a failure is counted under in its run (the run's ``kinds`` counts)."""

    LOGIN = "login"
    VALIDATION = "validation"
    REFUSED = "refused"
    INVOICE = "invoice"
    TRANSFORM = "transform"
    SCHEMA = "schema"
    CONFIG = "config"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    NO_EXPORT = "no_export"
    OTHER = "other"


def validation_message(invoice_number: str, count: int) -> str:
    """Message 5 for an invoice number and a number of validation errors."""
    return MESSAGE_VALIDATION.format("", invoice_number, count)


class ExportError(Exception):
    """Raised for any failure of the exporter; the base of the tree."""

    kind: ClassVar[Kind] = Kind.OTHER

    @property
    def code(self) -> str | None:
        """The error code counted in the metrics; None when Heeros had no part in it."""
        return None

    def user_message(self, invoice_number: str) -> str:
        """The text a user sees for this error, raised while exporting ``invoice_number``."""
        # Local failures already name the field or line at fault.
        return MESSAGE_LOCAL_FAILURE.format(invoice_number, str(self) or type(self).__name__)


class PermanentError(ExportError):
    """Raised when retrying cannot help: the same input would fail again."""


class TransientError(ExportError):
    """Raised when the failure may pass: the operation is worth retrying."""

    kind = Kind.UNAVAILABLE


class ConfigError(PermanentError):
    """Raised when the export configuration or a Start text is invalid."""

    kind = Kind.CONFIG


class InvoiceError(PermanentError):
    """Raised when an invoice's data is invalid; the message names invoice and field."""

    kind = Kind.INVOICE

    def __init__(self, message: str, *, invoice_number: str | None = None) -> None:
        super().__init__(message)
        self.invoice_number = invoice_number


class NoExport(PermanentError):
    """Raised when an invoice's customer is in a group without the Heeros export."""

    kind = Kind.NO_EXPORT

    def __init__(self, invoice_number: str, group: str) -> None:
        super().__init__(
            f"invoice {invoice_number}: its customer's group {group!r} has no Heeros export, "
            "so it was not exported "
            "(add the Heeros export to the group, then export the invoice again)"
        )
        self.invoice_number = invoice_number
        self.group = group


class TransformError(PermanentError):
    """Raised when an XSLT transform fails to compile or to apply."""

    kind = Kind.TRANSFORM


class SchemaError(PermanentError):
    """Raised when a document is not valid against its XML schema."""

    kind = Kind.SCHEMA

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class LoginError(PermanentError):
    """Raised when Heeros refuses the client identity or key."""

    kind = Kind.LOGIN

    @property
    def code(self) -> str:
        return "LOGIN"

    def user_message(self, invoice_number: str) -> str:
        return MESSAGE_LOGIN_FAILED


@dataclass(frozen=True)
class ValidationEntry:
    """One entry of Heeros's ``validationErrors`` list."""

    path: str
    message: str


class HeerosValidationError(PermanentError):
    """Raised when Heeros refuses an invoice for validation errors."""

    kind = Kind.VALIDATION

    def __init__(
        self, message: str, *, invoice_number: str, entries: list[ValidationEntry]
    ) -> None:
        super().__init__(message)
        self.invoice_number = invoice_number
        self.entries = entries

    @property
    def code(self) -> str:
        return "VALIDATION"

    def user_message(self, invoice_number: str) -> str:
        return validation_message(invoice_number, len(self.entries))


class HeerosRefusedError(PermanentError):
    """Raised when Heeros answers a 4xx other than validation or login."""

    kind = Kind.REFUSED

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"Heeros refused the request: {code}: {message}")
        self.heeros_code = code
        self.heeros_message = message

    @property
    def code(self) -> str:
        return self.heeros_code

    def user_message(self, invoice_number: str) -> str:
        return MESSAGE_SEND_REFUSED.format(self.heeros_code, self.heeros_message)


class InvoiceIncomplete(PermanentError):
    """Raised when Heeros registered the invoice but finds it incomplete."""

    def __init__(self, invoice_id: str) -> None:
        super().__init__(f"Heeros holds invoice {invoice_id} as incomplete")
        self.invoice_id = invoice_id

    def user_message(self, invoice_number: str) -> str:
        return MESSAGE_INCOMPLETE.format(self.invoice_id)


class ConfirmationTimeout(PermanentError):
    """Raised when Heeros has not confirmed a sent invoice before the deadline."""

    def __init__(self, invoice_id: str) -> None:
        super().__init__(f"Heeros did not confirm invoice {invoice_id} in time")
        self.invoice_id = invoice_id

    def user_message(self, invoice_number: str) -> str:
        return MESSAGE_NOT_CONFIRMED.format(self.invoice_id)


class HeerosUnavailable(TransientError):
    """Raised on a network error, a timeout or a 5xx answer from Heeros.

    ``status_code`` is None when Heeros did not answer at all; ``at_login`` marks a
    failure of the login. Either is message 1 ("not possible to connect to Heeros"):
    message 2 is kept for an error Heeros answered to a send.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, at_login: bool = False
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.at_login = at_login

    @property
    def code(self) -> str:
        return CODE_UNAVAILABLE if self.status_code is None else f"HTTP_{self.status_code}"

    def user_message(self, invoice_number: str) -> str:
        if self.status_code is None or self.at_login:
            return MESSAGE_LOGIN_FAILED
        return MESSAGE_SEND_REFUSED.format(self.code, str(self))


class HeerosRateLimited(TransientError):
    """Raised when Heeros answers 429; ``retry_after`` is in seconds.

    ``at_login`` marks a login answered 429: that is a failure to log in, message 1.
    """

    kind = Kind.RATE_LIMITED

    def __init__(self, retry_after: float, *, at_login: bool = False) -> None:
        super().__init__(f"Heeros asked to slow down for {retry_after:g} s")
        self.retry_after = retry_after
        self.at_login = at_login

    @property
    def code(self) -> str:
        return CODE_RATE_LIMITED

    def user_message(self, invoice_number: str) -> str:
        if self.at_login:
            return MESSAGE_LOGIN_FAILED
        return MESSAGE_SEND_REFUSED.format(CODE_RATE_LIMITED, str(self))


class Throttled(TransientError):
    """Raised when the shared limits on requests to a Heeros tenant hold a request back."""

    kind = Kind.OTHER

    def __init__(self, tenant: str, retry_after: float) -> None:
        super().__init__(f"requests to Heeros tenant {tenant} held back for {retry_after:.2f} s")
        self.tenant = tenant
        self.retry_after = retry_after


__all__ = [
    "CODE_RATE_LIMITED",
    "CODE_UNAVAILABLE",
    "MESSAGE_INCOMPLETE",
    "MESSAGE_LOCAL_FAILURE",
    "MESSAGE_LOGIN_FAILED",
    "MESSAGE_NOT_CONFIRMED",
    "MESSAGE_SEND_REFUSED",
    "MESSAGE_VALIDATION",
    "ConfigError",
    "ConfirmationTimeout",
    "ExportError",
    "HeerosRateLimited",
    "HeerosRefusedError",
    "HeerosUnavailable",
    "HeerosValidationError",
    "InvoiceError",
    "InvoiceIncomplete",
    "Kind",
    "LoginError",
    "NoExport",
    "PermanentError",
    "SchemaError",
    "Throttled",
    "TransformError",
    "TransientError",
    "ValidationEntry",
    "validation_message",
]
