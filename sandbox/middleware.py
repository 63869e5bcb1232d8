"""The outer layer of the contract calls: added latency, the outage switch and one log line per
request (method, path, tenant, status, duration; never a key or a token)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.connection import DROPPED
from sandbox.knobs import Knobs

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/_admin"
_REFERENCE = "sandbox.reference"
_SHOWN_CHARS = 40


def note_reference(scope: Scope, reference: str | None) -> None:
    """Leave the invoice number of a request for its log line."""
    scope[_REFERENCE] = reference


class Gate:
    """Pure ASGI middleware: cheap enough for hundreds of requests a second."""

    def __init__(self, app: ASGIApp, knobs: Callable[[], Knobs]) -> None:
        self.app = app
        self.knobs = knobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: list[int] = []

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            if not scope["path"].startswith(ADMIN_PREFIX):
                knobs = self.knobs()
                if knobs.latency_ms:
                    await asyncio.sleep(knobs.latency_ms / 1000)
                if knobs.outage:
                    outage = JSONResponse(
                        {"errorCode": "SERVICE_UNAVAILABLE", "errorMessage": "Heeros is down"},
                        status_code=503,
                    )
                    await outage(scope, receive, send_noting_status)
                    return
            await self.app(scope, receive, send_noting_status)
        finally:
            _log(scope, status, started)


def _clean(value: str) -> str:
    """Printable and short: query values are chosen by the caller."""
    return "".join(c if c.isprintable() and not c.isspace() else "?" for c in value[:_SHOWN_CHARS])


def _log(scope: Scope, status: list[int], started: float) -> None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tenant = _clean(f"{query.get('tt', ['-'])[0]}/{query.get('la', ['-'])[0]}")
    shown = str(status[0]) if status else "-"
    if scope.get(DROPPED):
        shown = "dropped"
    reference = scope.get(_REFERENCE)
    logger.info(
        "%s %s tenant=%s%s status=%s ms=%.1f",
        scope["method"],
        scope["path"],
        tenant,
        f" invoice={_clean(reference)}" if reference else "",
        shown,
        (time.perf_counter() - started) * 1000,
    )


__all__ = ["ADMIN_PREFIX", "Gate", "note_reference"]
