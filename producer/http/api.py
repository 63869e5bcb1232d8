"""The producer's HTTP API, the integration point for the TMS: ``create_api(settings)``.

Routes::

    POST /periods/{period}/close        202 a new run of the period; 200 the run it already has
    POST /exports                       202 a new run of invoices of closed periods, or of
                                        invoices given anew (corrected or late)
    POST /periods/{period}/reconcile    202 a reconciliation of the period against Heeros
    GET  /reconciliations/{id}          its report (per export, by category)
    POST /runs/{run}/requeue            202 the run's failed and unconfirmed invoices, again
    GET  /runs                          the recent runs' figures
    GET  /runs/{run}                    one run's figures, per export, with its warnings
    GET  /runs/{run}/invoices?state=S   a page of the run's invoices in state S
    GET  /runs/{run}/failures           the run's failures grouped by message

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
invoice is valid is refused (422) and closes nothing. A request closes at most
10,000 invoices (a larger period goes through ``heeros-export close-period``); its
body is read as it arrives and its invoices one at a time
(:func:`producer.operations.actions.stream_intake`), so any body takes bounded
memory, and an answer lists the first 100 refused invoices (its figures count all).
``?preview=true`` on a close or an export builds and checks every document without
sending any.

Errors answer ``{"detail": "..."}``: 401 no or a wrong token, 404 an unknown
run, 409 a re-queue of a preview, 413 a body over the limit (64 MiB) or of more
than 10,000 invoices, 422 bad input (naming the invoice and the field), 503 Redis
or the broker unreachable.

What each route does is :class:`producer.operations.actions.Operations`; this module is
the HTTP around it: the body's limit, the error answers and the routes, one router per
concern (periods, runs), each behind the bearer check of :mod:`producer.http.auth`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from tempfile import SpooledTemporaryFile
from typing import IO, Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import SecretStr, ValidationError
from starlette.concurrency import run_in_threadpool

from producer.http.auth import BearerGuard, require_bearer
from producer.http.bodylimit import BodyLimit
from producer.http.bodystream import read_in_thread
from producer.http.dashboard import create_dashboard
from producer.http.metrics import create_metrics_router
from producer.operations.actions import (
    MAX_INVOICES,
    SHOWN,
    Operations,
    Refused,
    rejections,
    stream_intake,
)
from producer.operations.reconcile import Reconciler, ReconciliationReport, ReconciliationView
from producer.operations.requests import names_invoices
from producer.operations.streams import StreamKind, media_kind, read_batches
from producer.operations.views import (
    ClosePeriod,
    ExportInvoices,
    FailureGroupsView,
    InvoicePage,
    Problem,
    RequeueAccepted,
    RunAccepted,
    RunView,
)
from worker.celery.app import CeleryApp, create_app
from worker.config import ExportConfig, load_export_config
from worker.config.settings import Settings
from worker.documents.fieldpath import field_path
from worker.documents.names import NAME_PATTERN, RUN_PATTERN
from worker.errors import ConfigError, ExportError, InvoiceError, TransientError
from worker.logs import register_secret
from worker.state.keys import State
from worker.state.store import StatusStore, open_store
from worker.tracing import configure_tracing

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
SPOOLED_BYTES = 1024 * 1024
"""A close request's body is kept in memory up to this, on disk past it, while it is read."""
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


# -- the application ----------------------------------------------------------------------


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{field_path(error['loc'])}: {error['msg']}" if error.get("loc") else str(error["msg"])
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
    413: {
        "model": Problem,
        "description": f"The body is over the limit, or holds more than {MAX_INVOICES:,} invoices",
    },
    422: {"model": Problem, "description": "Bad input, naming the invoice and the field"},
    503: {"model": Problem, "description": "Redis or the broker is unreachable"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "No run"}}

CLOSE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ClosePeriod.model_json_schema()}},
    }
}
"""The close request's body, as the OpenAPI document shows it (the route reads it itself)."""
EXPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [ExportInvoices.model_json_schema(), ClosePeriod.model_json_schema()]
                }
            }
        },
    }
}
"""An export request's body: invoice numbers or a period, or the invoices themselves."""


def _named_invoices(raw: bytes) -> ExportInvoices:
    """An export request that names invoices, checked as FastAPI checks a body."""
    try:
        return ExportInvoices.model_validate_json(raw or b"null")
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


RunPath = Annotated[str, PathParam(pattern=RUN_PATTERN, description="A run id: 2026-11-0001")]
PeriodPath = Annotated[str, PathParam(pattern=NAME_PATTERN, description="The period: 2026-11")]
Preview = Annotated[bool, Query(description="Build and check every document; send none.")]


def _api_token(settings: Settings, *, allow_anonymous: bool) -> SecretStr | None:
    token = settings.api_token
    if token is not None and not token.get_secret_value().strip():
        token = None
    if token is None and not allow_anonymous:
        raise ConfigError(
            "HEEROS_API_TOKEN is not set: the API would accept any caller. Set it, or allow "
            "anonymous calls explicitly for local use (heeros-export api --allow-anonymous)"
        )
    return token


def _export_config(settings: Settings, config: ExportConfig | None) -> ExportConfig:
    """The configuration given, else the settings' file; its client keys never reach a log."""
    if config is None:
        if settings.export_config is None:
            raise ConfigError("no export configuration: set HEEROS_EXPORT_CONFIG to its file")
        config = load_export_config(settings.export_config)
    for configured in config.exports:
        if configured.client_key is not None:
            register_secret(configured.client_key.get_secret_value())
    return config


def _add_error_answers(api: FastAPI) -> None:
    api.add_exception_handler(RequestValidationError, _invalid)
    api.add_exception_handler(Refused, _refused)
    api.add_exception_handler(TransientError, _unavailable)
    api.add_exception_handler(ExportError, _export_error)


def _period_routes(ops: Operations) -> APIRouter:
    """Closing a period and exporting again: each a new run."""
    router = APIRouter()

    def close_body(period: str, body: IO[bytes], preview: bool) -> RunAccepted:
        return ops.close(period, stream_intake(body, period), preview=preview)

    def close_streamed(
        period: str, kind: StreamKind, preview: bool
    ) -> Callable[[IO[bytes]], RunAccepted]:
        def close(body: IO[bytes]) -> RunAccepted:
            batches = read_batches(body, kind, source="body")
            return ops.close_stream(period, batches, preview=preview)

        return close

    @router.post(
        "/periods/{period}/close",
        status_code=202,
        responses={200: {"model": RunAccepted, "description": "The period's existing run"}},
        openapi_extra=CLOSE_BODY,
    )
    async def close(
        period: PeriodPath, request: Request, response: Response, preview: Preview = False
    ) -> RunAccepted:
        """Close a period: export its invoices once (a repeat answers with the same run).

        A JSON body holds at most 10,000 invoices. A period of any size streams: NDJSON
        (`Content-Type: application/x-ndjson`, an invoice a line) or a tar archive of
        Opter XML files (`application/x-tar`, `application/gzip`), recorded and queued
        1,000 invoices at a time while the body arrives; the run shows it is receiving
        until the body ends.
        """
        kind = media_kind(request.headers.get("content-type"))
        if kind is not None:
            accepted = await read_in_thread(request.stream(), close_streamed(period, kind, preview))
            response.status_code = 200 if accepted.existing else 202
            response.headers["Location"] = f"/runs/{accepted.run}"
            return accepted
        # The body is read as it arrives and its invoices one at a time (never the whole
        # of it as Python objects), so that any body takes bounded memory.
        with SpooledTemporaryFile(max_size=SPOOLED_BYTES) as body:
            async for chunk in request.stream():
                body.write(chunk)
            body.seek(0)
            accepted = await run_in_threadpool(close_body, period, body, preview)
        response.status_code = 200 if accepted.existing else 202
        response.headers["Location"] = f"/runs/{accepted.run}"
        return accepted

    def export_body(body: IO[bytes], preview: bool) -> RunAccepted:
        named = names_invoices(body)
        body.seek(0)
        if named:
            chosen = _named_invoices(body.read())
            return ops.export(chosen.invoices, period=chosen.period, preview=preview)
        intake = stream_intake(body, None, close=False)
        return ops.export_invoices(intake, period=intake.period, preview=preview)

    @router.post("/exports", status_code=202, openapi_extra=EXPORT_BODY)
    async def export(request: Request, response: Response, preview: Preview = False) -> RunAccepted:
        """A new run: invoices of closed periods again (by number, or a period), or invoices
        given anew, corrected or late, as a close takes them: see the README's corrections."""
        with SpooledTemporaryFile(max_size=SPOOLED_BYTES) as body:
            async for chunk in request.stream():
                body.write(chunk)
            body.seek(0)
            accepted = await run_in_threadpool(export_body, body, preview)
        response.headers["Location"] = f"/runs/{accepted.run}"
        return accepted

    return router


def _reconcile_routes(reconciler: Reconciler) -> APIRouter:
    """A period checked against Heeros, and its report."""
    router = APIRouter()

    @router.post("/periods/{period}/reconcile", status_code=202)
    def reconcile(
        period: PeriodPath,
        response: Response,
        export: Annotated[str | None, Query(description="Only this export.")] = None,
    ) -> ReconciliationView:
        """Check every invoice of a closed period in Heeros, in the background."""
        started = reconciler.start(period, export)
        response.headers["Location"] = f"/reconciliations/{started.reconciliation}"
        return started

    @router.get("/reconciliations/{reconciliation}", responses=NOT_FOUND)
    def reconciliation(reconciliation: RunPath) -> ReconciliationReport:
        """A reconciliation's report: per export, the invoices of each category."""
        return reconciler.report(reconciliation)

    return router


def _run_routes(ops: Operations) -> APIRouter:
    """The runs: their figures, their invoices, and re-queueing their failures."""
    router = APIRouter()

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

    @router.get("/runs/{run}/failures", responses=NOT_FOUND)
    def failures(run: RunPath) -> FailureGroupsView:
        """The run's failed, incomplete and unconfirmed invoices grouped by message."""
        return ops.failures(run)

    @router.get("/runs/{run}/invoices", responses=NOT_FOUND)
    def invoices(
        run: RunPath,
        state: Annotated[State, Query(description="The state: failed, exported, ...")],
        cursor: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        count: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> InvoicePage:
        """A page of the run's invoices in one state, each with its message."""
        return ops.invoices(run, state, cursor=cursor, count=count)

    return router


def create_api(
    settings: Settings,
    *,
    celery_app: CeleryApp | None = None,
    store: StatusStore | None = None,
    config: ExportConfig | None = None,
    allow_anonymous: bool = False,
    max_body: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API over the exporter's Celery app, status store and export configuration.

    Raises :class:`ConfigError` when ``settings.api_token`` is not set (or blank)
    and ``allow_anonymous`` is not given, or when there is no export configuration.
    """
    configure_tracing("heeros-export-api")  # the spans of the closes it takes, if OTEL_* asks
    token = _api_token(settings, allow_anonymous=allow_anonymous)
    config = _export_config(settings, config)
    ops = Operations(celery_app or create_app(settings), store or open_store(settings), config)
    api = FastAPI(title="heeros-export", version="1", description=DESCRIPTION)
    # The last middleware added runs first: the token is checked before the body's size.
    api.add_middleware(BodyLimit, max_body=max_body)
    api.add_middleware(BearerGuard, token=token, public=PUBLIC_PATHS, own_auth=OWN_AUTH_PREFIXES)
    _add_error_answers(api)
    if token is None:
        log.warning("the API accepts calls without a token (allow_anonymous): local use only")

    bearer = Security(require_bearer(token))
    reconciler = Reconciler(
        ops.app, ops.store, config, confirm_deadline_s=settings.confirm_deadline_s
    )
    for routes in (_period_routes(ops), _run_routes(ops), _reconcile_routes(reconciler)):
        api.include_router(routes, dependencies=[bearer], responses=ERRORS)
    api.include_router(
        create_dashboard(settings, store=ops.store, celery_app=ops.app), prefix="/dashboard"
    )
    api.include_router(create_metrics_router(settings, ops.store, app=ops.app))

    @api.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        """Alive, and Redis answers."""
        try:
            ops.store.ping()
        except TransientError:
            return JSONResponse({"status": "redis unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @api.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    return api


__all__ = ["MAX_BODY_BYTES", "PUBLIC_PATHS", "create_api"]
