"""The monitoring dashboard: every run and every failure, live, read from Redis.

Server-rendered pages (:mod:`producer.http.pages`) with a little inline JavaScript:

    GET  /login, POST /login          the API token in a form; opens a session (429 past the limits)
    GET|POST /logout                  ends the session
    GET  /?export=NAME                the runs (of one export), a bar each (refreshed every 3 s)
    GET  /runs/{run}                  a run: counts by state and export, its pace (rate, time
                                      left, a chart) and its problems grouped by message
    GET  /runs/{run}/events           server-sent events: the summary JSON about each second
    GET  /runs/{run}/summary          the same JSON once, for short polling or a script
    GET  /runs/{run}/problems         the problems, by message and each (an HTML fragment)
    GET  /runs/{run}/items?state=     every item in one state, a page at a time
    GET  /runs/{run}/search?number=   one invoice's exports in the run
    POST /runs/{run}/requeue-form     the "Re-queue failed" button; with ``group``, one
                                      group's "Re-queue these" button

One router per concern (login, runs, a run, its invoices, live figures, re-queue),
put together by :func:`create_dashboard`. Every figure comes from
:mod:`worker.state.aggregator` (set sizes: one round trip per summary whatever
the run's size; one more for the failure groups, one script call for the pace,
which also writes a progress sample at most every few seconds).

Access (:mod:`producer.http.auth`): every page but the login page takes the
session dependency, so without a valid cookie it redirects to the login page;
the re-queue form also checks its CSRF token and the request's origin. No page
reads the export configuration, so no client key can reach one.
"""

# No ``from __future__ import annotations`` here: FastAPI reads each route's
# annotations when the route is defined, and they name the factory's dependencies.

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.responses import StreamingResponse

from producer.http.auth import (
    LOGIN_ROUTE,
    Session,
    SessionRoute,
    Sessions,
    client_address,
    safe_next,
)
from producer.http.pages import (
    Pages,
    bar_width,
    pace_figures,
    page_cursor,
    read_form,
    summary_event,
)
from producer.http.reconciliation import reconciliation_routes
from producer.operations.runs import requeue_run
from worker.celery.app import CeleryApp, create_app
from worker.config.settings import Settings
from worker.logs import register_secret
from worker.state.aggregator import (
    RunState,
    RunSummary,
    failure_groups,
    items_in_state,
    pace,
    problems,
    recent_exports,
    recent_runs,
    summarize,
)
from worker.state.groups import is_group_key
from worker.state.keys import PROBLEM_STATES, State, item_id
from worker.state.sessions import SessionStore
from worker.state.store import StatusStore, open_store

log = logging.getLogger(__name__)

EVENT_INTERVAL_S = 1.0
STREAM_S = 300.0
"""A stream ends after this long and the browser reconnects (its session is checked again)."""
RECONNECT_MS = 5000
"""The browser reconnects this long after a stream ends, so a finished run is re-read slowly."""
PROBLEMS_SHOWN = 100
RUNS_SHOWN = 30
PAGE = 100
LOGIN_DELAY_S = 0.5
"""A refused login answers this late, which slows down guessing."""


@dataclass(frozen=True)
class Dashboard:
    """What the routes share: the status store, the sessions, the pages and the Celery app."""

    store: StatusStore
    sessions: Sessions
    pages: Pages
    celery: Callable[[], CeleryApp]


def create_dashboard(
    settings: Settings, *, store: StatusStore | None = None, celery_app: CeleryApp | None = None
) -> APIRouter:
    """The dashboard's routes; mount them with ``app.include_router(router)``."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    register_secret(token)
    store = store or open_store(settings)
    sessions = Sessions(token, SessionStore.for_store(store))
    dashboard = Dashboard(
        store=store,
        sessions=sessions,
        pages=Pages(sessions),
        celery=_celery_once(settings, celery_app),
    )
    router = APIRouter(include_in_schema=False)
    for routes in (
        _login_routes,
        _runs_routes,
        _run_routes,
        _invoice_routes,
        _live_routes,
        _requeue_routes,
        reconciliation_routes,
    ):
        router.include_router(routes(dashboard))
    return router


def _celery_once(settings: Settings, celery_app: CeleryApp | None) -> Callable[[], CeleryApp]:
    """The Celery app, created on first use: only the re-queue button needs it."""
    apps = [celery_app] if celery_app is not None else []
    lock = threading.Lock()

    def celery() -> CeleryApp:
        with lock:
            if not apps:
                apps.append(create_app(settings))
            return apps[0]

    return celery


def _login_routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=SessionRoute)
    sessions = dashboard.sessions

    def login_page(
        request: Request, target: str | None, error: str = "", status_code: int = 200
    ) -> Response:
        context = {"next": safe_next(target) or "", "error": error, "enabled": sessions.enabled}
        return dashboard.pages.render(
            request, "login.html", context, session=None, status_code=status_code
        )

    @router.get("/login", name=LOGIN_ROUTE)
    def login_form(request: Request, next: str | None = None) -> Response:
        return login_page(request, next)

    @router.post("/login", name="dashboard_login_submit")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        client = client_address(request)
        attempt = await run_in_threadpool(sessions.log_in, client, form.get("token", ""))
        if attempt.retry_after:
            log.warning("dashboard login from %s held back %d s", client, attempt.retry_after)
            error = f"Too many attempts: try again in {attempt.retry_after} s."
            page = login_page(request, form.get("next"), error, status_code=429)
            page.headers["Retry-After"] = str(attempt.retry_after)
            return page
        if attempt.cookie is None:
            await asyncio.sleep(LOGIN_DELAY_S)
            log.warning("dashboard login refused from %s", client)
            error = "That token is not right." if sessions.enabled else "Logging in is disabled."
            return login_page(request, form.get("next"), error, status_code=401)
        target = safe_next(form.get("next")) or request.url_for("dashboard_runs").path
        response = RedirectResponse(target, status_code=303)
        sessions.set_cookie(response, request, attempt.cookie)
        return response

    @router.api_route("/logout", methods=["GET", "POST"], name="dashboard_logout")
    def logout(request: Request) -> Response:
        response = RedirectResponse(request.url_for(LOGIN_ROUTE).path, status_code=303)
        sessions.sign_out(response, request)
        return response

    return router


def _runs_routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=SessionRoute)
    signed_in = Depends(dashboard.sessions.require)

    def runs(request: Request, session: Session, template: str, export: str) -> Response:
        chosen = export or None
        context = {
            "runs": recent_runs(dashboard.store, limit=RUNS_SHOWN, export=chosen),
            "width": bar_width,
            "export": export,
            "exports": recent_exports(dashboard.store) if template == "runs.html" else [],
        }
        return dashboard.pages.render(request, template, context, session=session)

    @router.get("/", name="dashboard_runs")
    def runs_page(
        request: Request, session: Annotated[Session, signed_in], export: str = ""
    ) -> Response:
        return runs(request, session, "runs.html", export)

    @router.get("/runs-rows", name="dashboard_runs_rows")
    def runs_rows(
        request: Request, session: Annotated[Session, signed_in], export: str = ""
    ) -> Response:
        return runs(request, session, "_runs_rows.html", export)

    return router


def _run_routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=SessionRoute)
    signed_in = Depends(dashboard.sessions.require)
    store, pages = dashboard.store, dashboard.pages

    @router.get("/runs/{run}", name="dashboard_run")
    def run_page(
        request: Request,
        run: str,
        session: Annotated[Session, signed_in],
        requeued: int | None = None,
    ) -> Response:
        summary = summarize(store, run)
        record = store.run_record(run)
        if summary is None or record is None:
            return pages.missing(request, session, run)
        context = {
            **_problems_context(store, summary),
            "exports": record.exports,
            "states": [state.value for state in State],
            "problem_states": [state.value for state in PROBLEM_STATES],
            "width": bar_width(summary),
            "pace": pace_figures(summary, pace(store, summary)),
            "requeued": requeued,
        }
        return pages.render(request, "run.html", context, session=session)

    @router.get("/runs/{run}/problems", name="dashboard_problems")
    def problems_fragment(
        request: Request, run: str, session: Annotated[Session, signed_in]
    ) -> Response:
        summary = summarize(store, run)
        if summary is None:
            return pages.missing(request, session, run)
        context = _problems_context(store, summary)
        return pages.render(request, "_problems.html", context, session=session)

    return router


def _problems_context(store: StatusStore, summary: RunSummary) -> dict[str, Any]:
    """What the problems fragment shows: the groups by message, then each problem."""
    return {
        "summary": summary,
        "groups": failure_groups(store, summary.run),
        "problems": problems(store, summary.run, count=PROBLEMS_SHOWN),
        "shown": PROBLEMS_SHOWN,
    }


def _invoice_routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=SessionRoute)
    signed_in = Depends(dashboard.sessions.require)
    store, pages = dashboard.store, dashboard.pages

    @router.get("/runs/{run}/items", name="dashboard_items")
    def items_page(
        request: Request,
        run: str,
        state: str,
        session: Annotated[Session, signed_in],
        cursor: str = "0",
    ) -> Response:
        # Taken as text: a cursor Redis would refuse is a bad link (400), not an
        # unreachable store (503), and that is known before Redis is asked.
        number = page_cursor(cursor)
        if number is None:
            reason = f"cursor {cursor[:24]!r} is not a page of this run's invoices"
            return pages.refused(request, session, run, reason, status_code=400)
        summary = summarize(store, run)
        if summary is None or state not in {s.value for s in State}:
            return pages.missing(request, session, run)
        following, records = items_in_state(store, run, State(state), cursor=number, count=PAGE)
        context = {"summary": summary, "state": state, "records": records, "cursor": following}
        return pages.render(request, "items.html", context, session=session)

    @router.get("/runs/{run}/search", name="dashboard_search")
    def search(
        request: Request, run: str, session: Annotated[Session, signed_in], number: str = ""
    ) -> Response:
        record = store.run_record(run)
        summary = summarize(store, run)
        if record is None or summary is None:
            return pages.missing(request, session, run)
        number = number.strip()[:64]
        found = []
        if number:
            indexes = range(max(1, len(record.exports)))
            found = store.items(run, [item_id(number, index) for index in indexes])
        context = {"summary": summary, "number": number, "found": found}
        return pages.render(request, "search.html", context, session=session)

    return router


def _live_routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=SessionRoute, dependencies=[Depends(dashboard.sessions.require)])

    @router.get("/runs/{run}/summary", name="dashboard_summary")
    def summary_json(run: str) -> Response:
        summary = summarize(dashboard.store, run)
        if summary is None:
            return JSONResponse({"detail": f"no run {run}"}, status_code=404)
        data = summary_event(summary, pace(dashboard.store, summary))
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    @router.get("/runs/{run}/events", name="dashboard_events")
    async def events(request: Request, run: str) -> Response:
        first = await run_in_threadpool(summarize, dashboard.store, run)
        if first is None:
            return JSONResponse({"detail": f"no run {run}"}, status_code=404)
        return StreamingResponse(
            _events(request, dashboard, run, first),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


async def _events(
    request: Request, dashboard: Dashboard, run: str, first: RunSummary
) -> AsyncIterator[str]:
    """The run's figures about each second while it runs, until the stream's time is up."""
    yield f"retry: {RECONNECT_MS}\n\n"
    summary: RunSummary | None = first
    ends = time.monotonic() + STREAM_S
    while summary is not None:
        found = await run_in_threadpool(pace, dashboard.store, summary)
        yield f"data: {json.dumps(summary_event(summary, found))}\n\n"
        if summary.state is not RunState.RUNNING or time.monotonic() > ends:
            return
        await asyncio.sleep(EVENT_INTERVAL_S)
        if await request.is_disconnected() or dashboard.sessions.of(request) is None:
            return
        summary = await run_in_threadpool(summarize, dashboard.store, run)


def _requeue_routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=SessionRoute)
    signed_in = Depends(dashboard.sessions.require)

    @router.post("/runs/{run}/requeue-form", name="dashboard_requeue")
    async def requeue(
        request: Request, run: str, session: Annotated[Session, signed_in]
    ) -> Response:
        form = await read_form(request)
        origin = request.headers.get("origin")
        expected = f"{request.url.scheme}://{request.url.netloc}"
        if not dashboard.sessions.csrf_matches(form.get("csrf", ""), session) or (
            origin is not None and origin != expected
        ):
            return HTMLResponse("The form has expired: reload the page and try again.", 403)
        group = form.get("group") or None
        if group is not None and not is_group_key(group):
            reason = "That is not a group of this run."
            return dashboard.pages.refused(request, session, run, reason, status_code=400)
        record = await run_in_threadpool(dashboard.store.run_record, run)
        if record is None:
            return dashboard.pages.missing(request, session, run)
        if record.preview:
            reason = "A preview sent nothing, so nothing of it can be re-queued: export instead."
            return dashboard.pages.refused(request, session, run, reason, status_code=409)
        done = await run_in_threadpool(
            partial(requeue_run, only=group), dashboard.celery(), dashboard.store, run
        )
        target = request.url_for("dashboard_run", run=run).path
        return RedirectResponse(f"{target}?requeued={done.total}", status_code=303)

    return router


__all__ = ["Dashboard", "create_dashboard"]
