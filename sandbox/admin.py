"""Admin calls under ``/_admin``, for tests and benchmarks: no login, no latency, no outage.

- ``GET /_admin/health`` -> ``{"status": "ok", "tenants": n, "invoices": n, "uptimeS": s}``
- ``GET /_admin/knobs`` -> the knobs; ``PUT /_admin/knobs`` with some of them -> the new knobs
  (422 ``INVALID_KNOBS`` with ``validationErrors`` when a value is refused)
- ``GET /_admin/received[?tt=&la=]`` -> ``{"tenants": [{"tt", "la", "received": [
  {"externalReference", "requests", "stored", "invoiceId", "status", "answers"}]}]}``
- ``GET /_admin/registers?tt=&la=`` -> ``{"tt", "la", "customers": {key: {"name", "address",
  "vatNumber", "eInvoice": {"address", "operator"} or null}}, "products": {id: {"name",
  "unitPrice"}}, "accountingObjects": {"accounts": [...], "dimensions": [...]}}``
- ``POST /_admin/reset`` -> ``{"reset": true}``: forgets tenants, invoices and tokens; the
  knobs go back to those the app was created with.

The calls that change stored invoices (list, delete, fail, set a status) are in
:mod:`sandbox.drift`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.api import error, tenant_of
from sandbox.envelope import RequestError
from sandbox.heeros import Heeros
from sandbox.middleware import ADMIN_PREFIX


class AdminApi:
    def __init__(self, heeros: Heeros) -> None:
        self.heeros = heeros

    def routes(self) -> list[Route]:
        return [
            Route(f"{ADMIN_PREFIX}/health", self.health, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/knobs", self.knobs, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/knobs", self.change_knobs, methods=["PUT"]),
            Route(f"{ADMIN_PREFIX}/received", self.received, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/registers", self.registers, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/reset", self.reset, methods=["POST"]),
        ]

    async def health(self, request: Request) -> Response:
        heeros = self.heeros
        return JSONResponse(
            {
                "status": "ok",
                "tenants": len(heeros.ledger.tenants),
                "invoices": heeros.ledger.invoice_count(),
                "uptimeS": round(heeros.clock() - heeros.started_at, 3),
            }
        )

    async def knobs(self, request: Request) -> Response:
        return JSONResponse(self.heeros.knobs.model_dump(mode="json"))

    async def change_knobs(self, request: Request) -> Response:
        try:
            patch = json.loads(await request.body())
        except ValueError:
            return error(400, "BAD_REQUEST", "the body must be a JSON object")
        if not isinstance(patch, dict):
            return error(400, "BAD_REQUEST", "the body must be a JSON object")
        try:
            knobs = self.heeros.knobs.changed(patch)
        except ValidationError as exc:
            entries = [
                {"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors(include_url=False)
            ]
            return error(422, "INVALID_KNOBS", "knobs refused", validationErrors=entries)
        self.heeros.set_knobs(knobs)
        return JSONResponse(knobs.model_dump(mode="json"))

    async def received(self, request: Request) -> Response:
        tt = request.query_params.get("tt")
        la = request.query_params.get("la")
        now = self.heeros.clock()
        tenants = [
            {"tt": tenant.tt, "la": tenant.la, "received": tenant.received_json(now)}
            for tenant in self.heeros.tenants()
            if (tt is None or tenant.tt == tt) and (la is None or tenant.la == la)
        ]
        return JSONResponse({"tenants": tenants})

    async def registers(self, request: Request) -> Response:
        try:
            tt, la = tenant_of(request)
        except RequestError as exc:
            return error(exc.status, exc.code, exc.message)
        tenant = self.heeros.ledger.find(tt, la)
        registers = tenant.registers.as_json() if tenant is not None else _EMPTY_REGISTERS
        return JSONResponse({"tt": tt, "la": la, **registers})

    async def reset(self, request: Request) -> Response:
        self.heeros.reset()
        return JSONResponse({"reset": True})


_EMPTY_REGISTERS: dict[str, Any] = {
    "customers": {},
    "products": {},
    "accountingObjects": {"accounts": [], "dimensions": []},
}


__all__ = ["AdminApi"]
