"""The producer's HTTP API, the integration point for the TMS: ``create_api(settings)``.

Routes::

    POST /periods/{period}/close        202 a new run of the period; 200 the run it already has
    POST /exports                       202 a new run of invoices of closed periods
    POST /runs/{run}/requeue            202 the run's failed and unconfirmed invoices, again
    GET  /runs                          the recent runs' figures
    GET  /runs/{run}                    one run's figures, per export, with its warnings
    GET  /runs/{run}/invoices?state=S   a page of the run's invoices in state S

Every route asks for ``Authorization: Bearer <HEEROS_API_TOKEN>``, checked in
constant time before the body is read; a request without it, or with another
token, gets 401 and does nothing. The OpenAPI document (``/openapi.json``) and
its pages (``/docs``, ``/redoc``) are served without a token: they describe the
routes and hold no data. Without a token in the settings the API refuses to be
built, unless ``allow_anonymous`` asks for an open API (local use only).

A period's invoices come as JSON, either per the invoice model
(``{"invoices": [{...}, ...]}``) or as Opter XML documents, each base64-encoded
(``{"opter_xml": ["PD94bWwg...", ...]}``): base64 carries a document's bytes as
they are, so its declared encoding (UTF-8 or ISO-8859-15) holds. An invalid
invoice fails alone, recorded in the run with its reason; a request in which no
invoice is valid is refused (422) and closes nothing. ``?preview=true`` on a
close or an export builds and checks every document without sending any.

Errors answer ``{"detail": "..."}``: 401 no or a wrong token, 404 an unknown
run, 409 a re-queue of a preview, 413 a body over the limit (64 MiB), 422 bad
input (naming the invoice and the field), 503 Redis or the broker unreachable.

What each route does is :class:`producer.operations.actions.Operations`; this module is
the HTTP around it: the guard, the error answers and the routes.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Annotated, Any

import redis
from celery import Celery
from fastapi import APIRouter, FastAPI, Query, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import HTTPBearer
from kombu.exceptions import OperationalError
from pydantic import SecretStr
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer.http.dashboard import create_dashboard
from producer.http.metrics import create_metrics_router
from producer.operations.actions import (
    PERIOD_PATTERN,
    RUN_PATTERN,
    SHOWN,
    ClosePeriod,
    ExportInvoices,
    InvoicePage,
    Operations,
    Problem,
    Refused,
    RequeueAccepted,
    RunAccepted,
    RunView,
    body_intake,
    rejections,
)
from worker.celery.app import create_app
from worker.config.exports import ExportConfig, load_export_config
from worker.config.settings import Settings
from worker.errors import ConfigError, ExportError, InvoiceError, TransientError
from worker.logs import register_secret
from worker.state.keys import State
from worker.state.store import StatusStore, open_store

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
DESCRIPTION = """Exports of Opter invoices to Heeros: close a period, export again, re-queue
failures, follow runs. Every call but this document's needs `Authorization: Bearer <token>`.

A period's invoices are JSON per the invoice model (`{"invoices": [...]}`) or Opter XML
documents, each base64-encoded (`{"opter_xml": ["PD94bWwg..."]}`). An invalid invoice fails
alone, with its reason; a request with no valid invoice is refused and closes nothing.
`?preview=true` builds and checks every Finvoice document and sends none."""
PUBLIC_PATHS = frozenset(
    {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz", "/"}
)
OWN_AUTH_PREFIXES = ("/dashboard", "/metrics")
"""The dashboard has its own login (a session cookie) and /metrics checks the token itself."""


# -- the guard: token and body size, before anything reads the body ----------------------


class BodyTooLarge(HTTPException):
    """Raised when a request's body grows past the limit while it is read."""

    def __init__(self, limit: int) -> None:
        mib, rest = divmod(limit, 1024 * 1024)
        size = f"{mib} MiB" if mib and not rest else f"{limit} bytes"
        super().__init__(413, f"the request body is larger than {size}")


class Guard:
    """Answers 401 to a request without the bearer token and 413 to one too large."""

    def __init__(self, app: ASGIApp, *, token: SecretStr | None, max_body: int) -> None:
        self.app = app
        self._token = token.get_secret_value().encode() if token is not None else None
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        path = scope["path"]
        guarded = path not in PUBLIC_PATHS and not path.startswith(OWN_AUTH_PREFIXES)
        if self._token is not None and guarded:
            refusal = self._refusal(headers.get(b"authorization"))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            status = 413 if length.isdigit() else 400
            detail = BodyTooLarge(self.max_body).detail if status == 413 else "bad Content-Length"
            await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
            return
        await self.app(scope, self._limited(receive), send)

    def _refusal(self, authorization: bytes | None) -> JSONResponse | None:
        assert self._token is not None
        challenge = 'Bearer realm="heeros-export"'
        if authorization is None:
            detail = "a bearer token is required (Authorization: Bearer <token>)"
        else:
            scheme, _, given = authorization.partition(b" ")
            if scheme.lower() == b"bearer" and secrets.compare_digest(given.strip(), self._token):
                return None
            detail = "the bearer token is not valid"
            challenge += ', error="invalid_token"'
        return JSONResponse({"detail": detail}, 401, headers={"WWW-Authenticate": challenge})

    def _limited(self, receive: Receive) -> Receive:
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        return limited


# -- the application ----------------------------------------------------------------------


def _where(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{_where(error['loc'])}: {error['msg']}" if error.get("loc") else str(error["msg"])
        for error in exc.errors()
    ]
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return JSONResponse({"detail": "; ".join(problems[:SHOWN]) + more}, status_code=422)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    problem = Problem(detail=exc.detail, rejected=rejections(exc.rejected))
    return JSONResponse(problem.model_dump(), status_code=exc.status)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "the status store or the broker is unreachable; try again"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _export_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InvoiceError):
        return JSONResponse({"detail": str(exc)}, status_code=422)
    log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "the export failed; see the API's log"}, status_code=500)


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No bearer token, or a wrong one"},
    413: {"model": Problem, "description": "The body is over the limit"},
    422: {"model": Problem, "description": "Bad input, naming the invoice and the field"},
    503: {"model": Problem, "description": "Redis or the broker is unreachable"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No run"}}

RunPath = Annotated[str, PathParam(pattern=RUN_PATTERN, description="A run id: 2026-11-0001")]
PeriodPath = Annotated[str, PathParam(pattern=PERIOD_PATTERN, description="The period: 2026-11")]
Preview = Annotated[bool, Query(description="Build and check every document; send none.")]


def create_api(
    settings: Settings,
    *,
    celery_app: Celery | None = None,
    store: StatusStore | None = None,
    config: ExportConfig | None = None,
    allow_anonymous: bool = False,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API over the exporter's Celery app, status store and export configuration.

    Raises :class:`ConfigError` when ``settings.api_token`` is not set (or blank)
    and ``allow_anonymous`` is not given, or when there is no export configuration.
    """
    token = settings.api_token
    if token is not None and not token.get_secret_value().strip():
        token = None
    if token is None and not allow_anonymous:
        raise ConfigError(
            "HEEROS_API_TOKEN is not set: the API would accept any caller. Set it, or allow "
            "anonymous calls explicitly for local use (heeros-export api --allow-anonymous)"
        )
    if config is None:
        if settings.export_config is None:
            raise ConfigError("no export configuration: set HEEROS_EXPORT_CONFIG to its file")
        config = load_export_config(settings.export_config)
    for configured in config.exports:
        if configured.client_key is not None:
            register_secret(configured.client_key.get_secret_value())
    ops = Operations(
        celery_app or create_app(settings),
        store or open_store(settings),
        config,
    )
    api = FastAPI(
        title="heeros-export",
        version="1",
        description=DESCRIPTION,
    )
    api.add_middleware(Guard, token=token, max_body=max_body)
    api.add_exception_handler(RequestValidationError, _invalid)
    api.add_exception_handler(Refused, _refused)
    for unreachable in (TransientError, OperationalError, redis.RedisError):
        api.add_exception_handler(unreachable, _unavailable)
    api.add_exception_handler(ExportError, _export_error)
    if token is None:
        log.warning("the API accepts calls without a token (allow_anonymous): local use only")

    # The bearer scheme here only documents the token: the guard has checked it already.
    router = APIRouter(dependencies=[Security(HTTPBearer(auto_error=False))], responses=ERRORS)

    @router.post(
        "/periods/{period}/close",
        status_code=202,
        responses={200: {"model": RunAccepted, "description": "The period's existing run"}},
    )
    def close(
        period: PeriodPath, body: ClosePeriod, response: Response, preview: Preview = False
    ) -> RunAccepted:
        """Close a period: export its invoices once (a repeat answers with the same run)."""
        accepted = ops.close(period, body_intake(body, period), preview=preview)
        response.status_code = 200 if accepted.existing else 202
        response.headers["Location"] = f"/runs/{accepted.run}"
        return accepted

    @router.post("/exports", status_code=202)
    def export(body: ExportInvoices, response: Response, preview: Preview = False) -> RunAccepted:
        """Export invoices of closed periods again, by number or a whole period: a new run."""
        accepted = ops.export(body.invoices, period=body.period, preview=preview)
        response.headers["Location"] = f"/runs/{accepted.run}"
        return accepted

    @router.post(
        "/runs/{run}/requeue",
        status_code=202,
        responses={**NOT_FOUND, 409: {"model": Problem, "description": "A preview run"}},
    )
    def requeue(run: RunPath) -> RequeueAccepted:
        """Queue the run's failed and unconfirmed invoices again (only those)."""
        return ops.requeue(run)

    @router.get("/runs")
    def runs(limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[RunView]:
        """The recent runs, newest first."""
        return ops.runs(limit)

    @router.get("/runs/{run}", responses=NOT_FOUND)
    def run(run: RunPath) -> RunView:
        """A run's figures against its total, per export, with its warnings."""
        return ops.run(run)

    @router.get("/runs/{run}/invoices", responses=NOT_FOUND)
    def invoices(
        run: RunPath,
        state: Annotated[State, Query(description="The state: failed, exported, ...")],
        cursor: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        count: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> InvoicePage:
        """A page of the run's invoices in one state, each with its message."""
        return ops.invoices(run, state, cursor=cursor, count=count)

    api.include_router(router)
    api.include_router(
        create_dashboard(settings, store=ops.store, celery_app=ops.app), prefix="/dashboard"
    )
    api.include_router(create_metrics_router(settings, ops.store))

    @api.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        """Alive, and Redis answers."""
        try:
            ops.store.redis.ping()
        except redis.RedisError:
            return JSONResponse({"status": "redis unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @api.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    return api


__all__ = ["MAX_BODY_BYTES", "PUBLIC_PATHS", "BodyTooLarge", "Guard", "create_api"]
