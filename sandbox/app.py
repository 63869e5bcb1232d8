"""The sandbox as an ASGI application."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from sandbox import finvoice
from sandbox.admin import AdminApi
from sandbox.api import ContractApi, error
from sandbox.drift import DriftApi
from sandbox.heeros import Heeros
from sandbox.knobs import Knobs
from sandbox.middleware import Gate
from sandbox.sessions import DEFAULT_USERS

_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def create_app(
    knobs: Knobs | None = None,
    *,
    users: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """A Heeros sandbox; its state is ``app.state.heeros`` (a :class:`~sandbox.heeros.Heeros`).

    ``users`` maps client identities to keys (default: ``demo`` / ``demo-key``); ``clock``
    (seconds, monotonic) drives token expiry and invoice states.
    """
    heeros = Heeros(knobs or Knobs(), users if users is not None else DEFAULT_USERS, clock)
    finvoice.schema()
    app = Starlette(
        routes=[
            *ContractApi(heeros).routes(),
            *AdminApi(heeros).routes(),
            *DriftApi(heeros).routes(),
        ],
        middleware=[Middleware(Gate, knobs=lambda: heeros.knobs)],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.heeros = heeros
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    return error(status, _CODES.get(status, "HTTP_ERROR"), f"{request.method} {request.url.path}")


__all__ = ["create_app"]
