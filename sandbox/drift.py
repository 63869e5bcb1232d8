"""Drift on purpose: admin calls that change the invoices Heeros holds behind the client's back,
for reconciliation tests. No login, no latency, no outage, like every call under ``/_admin``.

An invoice is chosen with the query parameters ``tt``, ``la`` and exactly one of ``invoiceId``
and ``externalReference``. Each call answers the invoice as :func:`entry` writes it:
``{"invoiceId", "status", "errorCode", "errorMessage", "externalReference", "contentSha256",
"statusSetByHand"}``.

- ``GET /_admin/invoices?tt=&la=[&prefix=]`` -> ``{"tt", "la", "invoices": [entry, ...]}``: the
  tenant's stored invoices, in the order received, all of them or those whose
  externalReference starts with ``prefix``.
- ``DELETE /_admin/invoices?tt=&la=&invoiceId=|externalReference=`` -> ``{"deleted": entry}``:
  Heeros loses the invoice; its number and Idempotency-Key are free again, so a later send is
  received as a new invoice.
- ``POST /_admin/invoices/error?...`` with ``{"errorCode", "errorMessage"}`` -> entry: a
  confirmed invoice (COMPLETE, SENDING, ARCHIVED, TO_LEDGER) fails afterwards and answers ERROR
  from now on; 409 ``NOT_CONFIRMED`` for an invoice not confirmed yet.
- ``PUT /_admin/invoices/status?...`` with ``{"status", "errorCode"?, "errorMessage"?}`` ->
  entry: any status of the contract, held from now on; ERROR needs ``errorCode`` and
  ``errorMessage``, the other statuses take neither.

Errors: 400 ``BAD_REQUEST`` (tenant or choice of invoice missing, body not a JSON object),
404 ``NOT_FOUND``, 422 ``INVALID_CHANGE`` with ``validationErrors`` for a refused body.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.api import error, tenant_of
from sandbox.envelope import RequestError
from sandbox.heeros import Heeros
from sandbox.ledger import CONFIRMED, ERROR, Invoice
from sandbox.middleware import ADMIN_PREFIX

Status = Literal[
    "RECEIVED",
    "PROCESSING",
    "COMPLETE",
    "SENDING",
    "ARCHIVED",
    "TO_LEDGER",
    "INCOMPLETE",
    "ERROR",
]
MAX_CODE_CHARS = 100
MAX_MESSAGE_CHARS = 2000


class _Change(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, alias_generator=to_camel, validate_by_name=True
    )


class Failure(_Change):
    """The body of ``POST /_admin/invoices/error``."""

    error_code: str = Field(min_length=1, max_length=MAX_CODE_CHARS)
    error_message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class StatusChange(_Change):
    """The body of ``PUT /_admin/invoices/status``."""

    status: Status
    error_code: str | None = Field(default=None, min_length=1, max_length=MAX_CODE_CHARS)
    error_message: str | None = Field(default=None, min_length=1, max_length=MAX_MESSAGE_CHARS)

    @model_validator(mode="after")
    def _error_fields_go_with_error(self) -> StatusChange:
        failed = self.status == ERROR
        if failed and (self.error_code is None or self.error_message is None):
            raise ValueError("ERROR needs errorCode and errorMessage")
        if not failed and (self.error_code is not None or self.error_message is not None):
            raise ValueError("errorCode and errorMessage go with ERROR only")
        return self


Change = TypeVar("Change", bound=_Change)


class DriftApi:
    def __init__(self, heeros: Heeros) -> None:
        self.heeros = heeros

    def routes(self) -> list[Route]:
        base = f"{ADMIN_PREFIX}/invoices"
        return [
            Route(base, self.listing, methods=["GET"]),
            Route(base, self.delete, methods=["DELETE"]),
            Route(f"{base}/error", self.fail, methods=["POST"]),
            Route(f"{base}/status", self.set_status, methods=["PUT"]),
        ]

    async def listing(self, request: Request) -> Response:
        try:
            tt, la = tenant_of(request)
        except RequestError as exc:
            return error(exc.status, exc.code, exc.message)
        prefix = request.query_params.get("prefix", "")
        now = self.heeros.clock()
        invoices = [entry(i, now) for i in self.heeros.invoices(tt, la, prefix)]
        return JSONResponse({"tt": tt, "la": la, "invoices": invoices})

    async def delete(self, request: Request) -> Response:
        try:
            tt, la, invoice = self._chosen(request)
        except RequestError as exc:
            return error(exc.status, exc.code, exc.message)
        self.heeros.delete(tt, la, invoice)
        return JSONResponse({"deleted": entry(invoice, self.heeros.clock())})

    async def fail(self, request: Request) -> Response:
        try:
            tt, la, invoice = self._chosen(request)
            failure = _body(Failure, await request.body())
        except RequestError as exc:
            return error(exc.status, exc.code, exc.message)
        except ValidationError as exc:
            return _refused(exc)
        now = self.heeros.clock()
        status = invoice.status(now)
        if status not in CONFIRMED:
            return error(
                409,
                "NOT_CONFIRMED",
                f"invoice {invoice.invoice_id} is {status}, not confirmed: "
                "set its status with PUT /_admin/invoices/status instead",
            )
        changed = self.heeros.set_status(
            tt, la, invoice, ERROR, failure.error_code, failure.error_message
        )
        return JSONResponse(entry(changed, now))

    async def set_status(self, request: Request) -> Response:
        try:
            tt, la, invoice = self._chosen(request)
            change = _body(StatusChange, await request.body())
        except RequestError as exc:
            return error(exc.status, exc.code, exc.message)
        except ValidationError as exc:
            return _refused(exc)
        changed = self.heeros.set_status(
            tt, la, invoice, change.status, change.error_code, change.error_message
        )
        return JSONResponse(entry(changed, self.heeros.clock()))

    def _chosen(self, request: Request) -> tuple[str, str, Invoice]:
        """The tenant and the stored invoice a call names; raise :class:`RequestError`."""
        tt, la = tenant_of(request)
        invoice_id = request.query_params.get("invoiceId", "")
        reference = request.query_params.get("externalReference", "")
        if bool(invoice_id) == bool(reference):
            raise RequestError(
                400,
                "BAD_REQUEST",
                "give exactly one of the query parameters invoiceId and externalReference",
            )
        if invoice_id:
            found = self.heeros.invoice(tt, la, invoice_id)
            named = f"invoice {invoice_id}"
        else:
            tenant = self.heeros.ledger.find(tt, la)
            found = tenant.by_number(reference) if tenant is not None else None
            named = f"externalReference {reference}"
        if found is None:
            raise RequestError(404, "NOT_FOUND", f"no {named} for this tt/la")
        return tt, la, found


def entry(invoice: Invoice, now: float) -> dict[str, Any]:
    """One invoice as the drift calls answer it."""
    return invoice.admin_json(now)


def _body(model: type[Change], body: bytes) -> Change:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RequestError(400, "BAD_REQUEST", "the body must be a JSON object")
    return model.model_validate(data)


def _refused(exc: ValidationError) -> Response:
    entries = [
        {"path": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
        for e in exc.errors(include_url=False)
    ]
    return error(422, "INVALID_CHANGE", "change refused", validationErrors=entries)


__all__ = ["DriftApi", "Failure", "StatusChange", "entry"]
