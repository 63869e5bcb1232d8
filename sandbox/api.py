"""The contract calls over HTTP: login, send, status and look-up (see heeros-api-contract.md)."""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.connection import DroppedAnswer
from sandbox.envelope import Envelope, RequestError, external_reference_of
from sandbox.heeros import Accepted, Duplicate, Heeros
from sandbox.middleware import note_reference
from sandbox.sessions import NOMINAL_TTL_S

COOKIE = "LtpaToken"
MAX_BODY_BYTES = 12_000_000
MAX_KEY_CHARS = 200


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"errorCode": code, "errorMessage": message, **extra}, status_code=status)


def tenant_of(request: Request) -> tuple[str, str]:
    """The (tt, la) of a call, kept as strings; raise :class:`RequestError` when missing."""
    tt = request.query_params.get("tt", "")
    la = request.query_params.get("la", "")
    if not tt or not la:
        raise RequestError(400, "BAD_REQUEST", "the query parameters tt and la are required")
    return tt, la


class ContractApi:
    def __init__(self, heeros: Heeros) -> None:
        self.heeros = heeros

    def routes(self) -> list[Route]:
        return [
            Route("/auth/login", self.login, methods=["POST"]),
            Route("/sales-invoices", self.send, methods=["POST"]),
            Route("/sales-invoices", self.lookup, methods=["GET"]),
            Route("/sales-invoices/{invoice_id}", self.status, methods=["GET"]),
        ]

    async def login(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error(400, "BAD_REQUEST", "the body must be JSON")
        identity = body.get("username") if isinstance(body, dict) else None
        key = body.get("apiKey") if isinstance(body, dict) else None
        if not isinstance(identity, str) or not isinstance(key, str):
            return error(400, "BAD_REQUEST", "username and apiKey are required strings")
        if self.heeros.dice.chance(self.heeros.knobs.fail_login_5xx):
            return error(503, "SERVICE_UNAVAILABLE", "login temporarily unavailable, retry later")
        token = self.heeros.sessions.login(identity, key)
        if token is None:
            return error(401, "AUTH_FAILED", "unknown username or wrong API key")
        ttl = self.heeros.knobs.token_ttl_s
        expires_in = math.ceil(ttl) if ttl is not None else NOMINAL_TTL_S
        return JSONResponse({"token": token, "expiresIn": expires_in})

    def _authorised(self, request: Request) -> bool:
        token = request.cookies.get(COOKIE)
        return self.heeros.sessions.valid(token, self.heeros.knobs.token_ttl_s)

    async def send(self, request: Request) -> Response:
        if not self._authorised(request):
            return _auth_failed()
        try:
            tt, la = tenant_of(request)
        except RequestError as exc:
            return error(exc.status, exc.code, exc.message)
        body = await request.body()
        reference = external_reference_of(body) if len(body) <= MAX_BODY_BYTES else None
        note_reference(request.scope, reference)
        response = self._send(request, tt, la, body)
        if reference is not None:
            answer = "dropped" if isinstance(response, DroppedAnswer) else str(response.status_code)
            self.heeros.note(tt, la, reference, answer)
        return response

    def _send(self, request: Request, tt: str, la: str, body: bytes) -> Response:
        key = request.headers.get("Idempotency-Key", "")
        if not key or len(key) > MAX_KEY_CHARS:
            return error(400, "BAD_REQUEST", "the Idempotency-Key header is required")
        if len(body) > MAX_BODY_BYTES:
            return error(413, "CONTENT_TOO_LARGE", f"the body exceeds {MAX_BODY_BYTES} bytes")
        try:
            envelope = Envelope.decode(body)
        except RequestError as exc:
            return error(exc.status, exc.code, exc.message)
        heeros = self.heeros
        knobs = heeros.knobs
        if heeros.dice.chance(knobs.fail_429):
            response = error(429, "TOO_MANY_REQUESTS", "rate limit exceeded, retry later")
            response.headers["Retry-After"] = str(knobs.retry_after_s)
            return response
        if heeros.dice.chance(knobs.fail_5xx):
            return error(503, "SERVICE_UNAVAILABLE", "temporarily unavailable, retry later")
        outcome = heeros.send(tt, la, key, envelope)
        if isinstance(outcome, Duplicate):
            stored = outcome.invoice
            message = f"invoice {stored.external_reference} was already received"
            if outcome.changed:
                message += (
                    " with a different content; Heeros keeps the first "
                    "(a correction is a credit note)"
                )
            return error(409, "DUPLICATE", message, invoiceId=stored.invoice_id)
        if not isinstance(outcome, Accepted):
            return error(
                400,
                "VALIDATION_FAILED",
                f"the invoice has {outcome.total} validation error(s)",
                validationErrors=[{"path": p.path, "message": p.message} for p in outcome.problems],
            )
        if heeros.dice.chance(knobs.drop_after_store):
            return DroppedAnswer()
        return JSONResponse(
            {"invoiceId": outcome.invoice.invoice_id, "status": "RECEIVED"}, status_code=202
        )

    async def status(self, request: Request) -> Response:
        if not self._authorised(request):
            return _auth_failed()
        try:
            tt, la = tenant_of(request)
        except RequestError as exc:
            return error(exc.status, exc.code, exc.message)
        invoice_id = request.path_params["invoice_id"]
        invoice = self.heeros.invoice(tt, la, invoice_id)
        if invoice is None:
            return error(404, "NOT_FOUND", f"no invoice {invoice_id} for this tt/la")
        note_reference(request.scope, invoice.external_reference)
        return JSONResponse(invoice.as_json(self.heeros.clock()))

    async def lookup(self, request: Request) -> Response:
        if not self._authorised(request):
            return _auth_failed()
        try:
            tt, la = tenant_of(request)
        except RequestError as exc:
            return error(exc.status, exc.code, exc.message)
        reference = request.query_params.get("externalReference", "")
        if not reference:
            return error(400, "BAD_REQUEST", "the query parameter externalReference is required")
        note_reference(request.scope, reference)
        now = self.heeros.clock()
        items = [
            {"invoiceId": invoice.invoice_id, "status": invoice.status(now)}
            for invoice in self.heeros.lookup(tt, la, reference)
        ]
        return JSONResponse({"items": items})


def _auth_failed() -> JSONResponse:
    return error(401, "AUTH_FAILED", "missing, unknown or expired LtpaToken")


__all__ = ["COOKIE", "ContractApi", "error", "tenant_of"]
