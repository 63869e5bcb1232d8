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
"""

from __future__ import annotations

from dataclasses import dataclass


class ExportError(Exception):
    """Raised for any failure of the exporter; the base of the tree."""


class PermanentError(ExportError):
    """Raised when retrying cannot help: the same input would fail again."""


class TransientError(ExportError):
    """Raised when the failure may pass: the operation is worth retrying."""


class ConfigError(PermanentError):
    """Raised when the export configuration or a Start text is invalid."""


class InvoiceError(PermanentError):
    """Raised when an invoice's data is invalid; the message names invoice and field."""

    def __init__(self, message: str, *, invoice_number: str | None = None) -> None:
        super().__init__(message)
        self.invoice_number = invoice_number


class TransformError(PermanentError):
    """Raised when an XSLT transform fails to compile or to apply."""


class SchemaError(PermanentError):
    """Raised when a document is not valid against its XML schema."""

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class LoginError(PermanentError):
    """Raised when Heeros refuses the client identity or key."""


@dataclass(frozen=True)
class ValidationEntry:
    """One entry of Heeros's ``validationErrors`` list."""

    path: str
    message: str


class HeerosValidationError(PermanentError):
    """Raised when Heeros refuses an invoice for validation errors."""

    def __init__(
        self, message: str, *, invoice_number: str, entries: list[ValidationEntry]
    ) -> None:
        super().__init__(message)
        self.invoice_number = invoice_number
        self.entries = entries


class HeerosRefusedError(PermanentError):
    """Raised when Heeros answers a 4xx other than validation or login."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"Heeros refused the request: {code}: {message}")
        self.code = code
        self.heeros_message = message


class InvoiceIncomplete(PermanentError):
    """Raised when Heeros registered the invoice but finds it incomplete."""

    def __init__(self, invoice_id: str) -> None:
        super().__init__(f"Heeros holds invoice {invoice_id} as incomplete")
        self.invoice_id = invoice_id


class ConfirmationTimeout(PermanentError):
    """Raised when Heeros has not confirmed a sent invoice before the deadline."""

    def __init__(self, invoice_id: str) -> None:
        super().__init__(f"Heeros did not confirm invoice {invoice_id} in time")
        self.invoice_id = invoice_id


class HeerosUnavailable(TransientError):
    """Raised on a network error, a timeout or a 5xx answer from Heeros."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class HeerosRateLimited(TransientError):
    """Raised when Heeros answers 429; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Heeros asked to slow down for {retry_after:g} s")
        self.retry_after = retry_after


class Throttled(TransientError):
    """Raised when the shared limits on requests to a Heeros tenant hold a request back."""

    def __init__(self, tenant: str, retry_after: float) -> None:
        super().__init__(f"requests to Heeros tenant {tenant} held back for {retry_after:.2f} s")
        self.tenant = tenant
        self.retry_after = retry_after


__all__ = [
    "ConfigError",
    "ConfirmationTimeout",
    "ExportError",
    "HeerosRateLimited",
    "HeerosRefusedError",
    "HeerosUnavailable",
    "HeerosValidationError",
    "InvoiceError",
    "InvoiceIncomplete",
    "LoginError",
    "PermanentError",
    "SchemaError",
    "Throttled",
    "TransformError",
    "TransientError",
    "ValidationEntry",
]
