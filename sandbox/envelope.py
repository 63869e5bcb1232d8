"""The JSON body of ``POST /sales-invoices`` and the request errors it can raise."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

FORMAT = "FINVOICE_3_0"
ENCODINGS = ("UTF-8", "ISO-8859-15")
MAX_CONTENT_CHARS = 5_000_000


class RequestError(Exception):
    """Raised when a send request is malformed: answered with its own 4xx, never validated."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Options(BaseModel):
    """The seven Start-text flags, camel-cased on the wire."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, alias_generator=to_camel, validate_by_name=True
    )

    move_only_to_ledger: bool
    send_to_customer: bool
    create_customer: bool
    update_customer: bool
    create_product: bool
    update_product: bool
    create_accounting_objects: bool


class Envelope(BaseModel):
    """One invoice as sent to Heeros."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, alias_generator=to_camel, validate_by_name=True
    )

    external_reference: str = Field(min_length=1, max_length=100)
    format: str
    encoding: str
    options: Options
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS)

    @classmethod
    def decode(cls, body: bytes) -> Envelope:
        """Parse and check a request body; raise :class:`RequestError` when it is unusable."""
        try:
            envelope = cls.model_validate_json(body)
        except ValidationError as exc:
            raise RequestError(400, "BAD_REQUEST", _describe(exc)) from exc
        if envelope.format != FORMAT:
            raise RequestError(
                422, "UNSUPPORTED_FORMAT", f"format must be {FORMAT}, not {envelope.format!r}"
            )
        if envelope.encoding not in ENCODINGS:
            raise RequestError(
                422,
                "UNSUPPORTED_ENCODING",
                f"encoding must be one of {', '.join(ENCODINGS)}, not {envelope.encoding!r}",
            )
        if envelope.options.move_only_to_ledger and envelope.options.send_to_customer:
            raise RequestError(
                422,
                "INVALID_OPTIONS",
                "only one of moveOnlyToLedger and sendToCustomer may be true",
            )
        return envelope


def external_reference_of(body: bytes) -> str | None:
    """The externalReference of a body that may be invalid otherwise, for the admin counters."""
    try:
        envelope = _Reference.model_validate_json(body)
    except ValidationError:
        return None
    return envelope.external_reference


class _Reference(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, alias_generator=to_camel)

    external_reference: str = Field(min_length=1, max_length=100)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:10]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "malformed request: " + "; ".join(parts)


__all__ = [
    "ENCODINGS",
    "FORMAT",
    "MAX_CONTENT_CHARS",
    "Envelope",
    "Options",
    "RequestError",
    "external_reference_of",
]
