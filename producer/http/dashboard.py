"""The monitoring dashboard: every run and every failure, live, read from Redis.

Server-rendered pages (Jinja2, autoescaped) with a little inline JavaScript:

    GET  /login, POST /login          the API token in a form; sets the session cookie
    GET|POST /logout                  drops it
    GET  /                            the runs, a progress bar each (refreshed every 3 s)
    GET  /runs/{run}                  a run: counts by state and export, its problems
    GET  /runs/{run}/events           server-sent events: the summary JSON about each second
    GET  /runs/{run}/summary          the same JSON once, for short polling or a script
    GET  /runs/{run}/problems         the problems table (an HTML fragment)
    GET  /runs/{run}/items?state=     every item in one state, a page at a time
    GET  /runs/{run}/search?number=   one invoice's exports in the run
    POST /runs/{run}/requeue-form     the "Re-queue failed" button

Every figure comes from :mod:`worker.state.aggregator` (set sizes: one round trip per
summary whatever the run's size). Links are built from route names, so the
router works under any prefix.

Access: the session cookie holds an expiry, a random nonce and an HMAC of both
keyed by the API token, never the token itself; it is HttpOnly and
SameSite=Strict. The re-queue form also carries a per-session CSRF token (an
HMAC of the nonce). Without a valid cookie every page redirects to the login
page. With no API token configured, nobody can log in. No page reads the
export configuration, so no client key can reach one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from celery import Celery
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.responses import StreamingResponse

from producer.operations.runs import requeue_run
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.logs import register_secret
from worker.state.aggregator import (
    RunState,
    RunSummary,
    items_in_state,
    problems,
    recent_runs,
    summarize,
)
from worker.state.keys import PROBLEM_STATES, State, item_id
from worker.state.store import StatusStore, open_store

log = logging.getLogger(__name__)

COOKIE = "heeros_session"
SESSION_S = 12 * 3600
"""How long a login lasts."""
EVENT_INTERVAL_S = 1.0
STREAM_S = 300.0
"""A stream ends after this long and the browser reconnects (its session is checked again)."""
RECONNECT_MS = 5000
"""The browser reconnects this long after a stream ends, so a finished run is re-read slowly."""
PROBLEMS_SHOWN = 100
RUNS_SHOWN = 30
PAGE = 100
MAX_FORM_BYTES = 4096
TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class Session:
    """A valid login: its nonce ties the CSRF token to it."""

    nonce: str
    expires: int


class Sessions:
    """Issues and checks session cookies and CSRF tokens, keyed by the API token."""

    def __init__(self, token: str | None) -> None:
        self._token = token
        self._key = (
            hmac.new(token.encode(), b"heeros-dashboard-session", hashlib.sha256).digest()
            if token
            else b""
        )

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def token_matches(self, given: str) -> bool:
        if self._token is None:
            return False
        return secrets.compare_digest(given.encode(), self._token.encode())

    def issue(self, *, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_S)
        body = f"v1.{expires}.{secrets.token_urlsafe(18)}"
        return f"{body}.{self._sign(body)}"

    def check(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        if not cookie or not self._key:
            return None
        body, _, signature = cookie.rpartition(".")
        version, _, rest = body.partition(".")
        expires, _, nonce = rest.partition(".")
        if version != "v1" or not expires.isdigit() or not nonce:
            return None
        if not secrets.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        if int(expires) < (now or time.time()):
            return None
        return Session(nonce=nonce, expires=int(expires))

    def csrf(self, session: Session) -> str:
        return self._sign(f"csrf.{session.nonce}")[:32]

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()


def bar_width(summary: RunSummary) -> float:
    """The progress bar's filled share in percent: done of total while running, else full."""
    if summary.state is not RunState.RUNNING or not summary.total:
        return 100.0
    return float(int(1000 * (summary.exported + summary.failed) / summary.total) / 10)


def clock(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp)) if stamp else ""


def safe_next(target: str | None) -> str | None:
    """A local path to go back to after the login, or None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def _security_headers(nonce: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def create_dashboard(
    settings: Settings, *, store: StatusStore | None = None, celery_app: Celery | None = None
) -> APIRouter:
    """The dashboard's routes; mount them with ``app.include_router(router)``."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    register_secret(token)
    sessions = Sessions(token)
    status = store or open_store(settings)
    templates = Jinja2Templates(
        env=jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True
        )
    )
    templates.env.filters["clock"] = clock
    apps: list[Celery] = [celery_app] if celery_app is not None else []
    lock = threading.Lock()
    router = APIRouter(include_in_schema=False)

    def celery() -> Celery:
        with lock:
            if not apps:
                apps.append(create_app(settings))
            return apps[0]

    def link(request: Request) -> Callable[..., str]:
        def build(name: str, query: dict[str, str] | None = None, **params: str) -> str:
            path = request.url_for(name, **params).path
            return f"{path}?{urlencode(query)}" if query else path

        return build

    def page(
        request: Request,
        name: str,
        context: dict[str, Any],
        *,
        session: Session | None,
        status_code: int = 200,
    ) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        full = {
            "nonce": nonce,
            "link": link(request),
            "session": session,
            "csrf": sessions.csrf(session) if session else "",
            **context,
        }
        return templates.TemplateResponse(
            request, name, full, status_code=status_code, headers=_security_headers(nonce)
        )

    def to_login(request: Request) -> RedirectResponse:
        login = request.url_for("dashboard_login").path
        if request.method != "GET":  # a form posted without a session: start from the runs
            return RedirectResponse(login, status_code=303)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{login}?{urlencode({'next': target})}", status_code=303)

    def session_of(request: Request) -> Session | None:
        return sessions.check(request.cookies.get(COOKIE))

    def not_found(request: Request, session: Session, run: str) -> HTMLResponse:
        return page(request, "missing.html", {"run": run}, session=session, status_code=404)

    @router.get("/login", name="dashboard_login")
    def login_form(request: Request, next: str | None = None) -> Response:
        return page(
            request,
            "login.html",
            {"next": safe_next(next) or "", "error": "", "enabled": sessions.enabled},
            session=None,
        )

    @router.post("/login", name="dashboard_login_submit")
    async def login(request: Request) -> Response:
        form = await _form(request)
        target = safe_next(form.get("next")) or request.url_for("dashboard_runs").path
        if not sessions.token_matches(form.get("token", "")):
            await asyncio.sleep(0.5)  # slows down guessing
            client = request.client.host if request.client else "-"
            log.warning("dashboard login refused from %s", client)
            error = "That token is not right." if sessions.enabled else "Logging in is disabled."
            return page(
                request,
                "login.html",
                {
                    "next": safe_next(form.get("next")) or "",
                    "error": error,
                    "enabled": sessions.enabled,
                },
                session=None,
                status_code=401,
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            sessions.issue(),
            max_age=SESSION_S,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.api_route("/logout", methods=["GET", "POST"], name="dashboard_logout")
    def logout(request: Request) -> Response:
        response = RedirectResponse(request.url_for("dashboard_login").path, status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @router.get("/", name="dashboard_runs")
    def runs_page(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return to_login(request)
        runs = recent_runs(status, limit=RUNS_SHOWN)
        return page(request, "runs.html", {"runs": runs, "width": bar_width}, session=session)

    @router.get("/runs-rows", name="dashboard_runs_rows")
    def runs_rows(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return to_login(request)
        runs = recent_runs(status, limit=RUNS_SHOWN)
        return page(request, "_runs_rows.html", {"runs": runs, "width": bar_width}, session=session)

    @router.get("/runs/{run}", name="dashboard_run")
    def run_page(request: Request, run: str, requeued: int | None = None) -> Response:
        session = session_of(request)
        if session is None:
            return to_login(request)
        summary = summarize(status, run)
        record = status.run_record(run)
        if summary is None or record is None:
            return not_found(request, session, run)
        context = {
            "summary": summary,
            "exports": record.exports,
            "states": [state.value for state in State],
            "problem_states": [state.value for state in PROBLEM_STATES],
            "problems": problems(status, run, count=PROBLEMS_SHOWN),
            "shown": PROBLEMS_SHOWN,
            "width": bar_width(summary),
            "requeued": requeued,
        }
        return page(request, "run.html", context, session=session)

    @router.get("/runs/{run}/problems", name="dashboard_problems")
    def problems_fragment(request: Request, run: str) -> Response:
        session = session_of(request)
        if session is None:
            return to_login(request)
        summary = summarize(status, run)
        if summary is None:
            return not_found(request, session, run)
        context = {
            "summary": summary,
            "problems": problems(status, run, count=PROBLEMS_SHOWN),
            "shown": PROBLEMS_SHOWN,
        }
        return page(request, "_problems.html", context, session=session)

    @router.get("/runs/{run}/items", name="dashboard_items")
    def items_page(request: Request, run: str, state: str, cursor: int = 0) -> Response:
        session = session_of(request)
        if session is None:
            return to_login(request)
        summary = summarize(status, run)
        if summary is None or state not in {s.value for s in State}:
            return not_found(request, session, run)
        cursor, records = items_in_state(status, run, State(state), cursor=cursor, count=PAGE)
        context = {"summary": summary, "state": state, "records": records, "cursor": cursor}
        return page(request, "items.html", context, session=session)

    @router.get("/runs/{run}/search", name="dashboard_search")
    def search(request: Request, run: str, number: str = "") -> Response:
        session = session_of(request)
        if session is None:
            return to_login(request)
        record = status.run_record(run)
        summary = summarize(status, run)
        if record is None or summary is None:
            return not_found(request, session, run)
        number = number.strip()[:64]
        found = []
        if number:
            indexes = range(max(1, len(record.exports)))
            found = status.items(run, [item_id(number, index) for index in indexes])
        context = {"summary": summary, "number": number, "found": found}
        return page(request, "search.html", context, session=session)

    @router.get("/runs/{run}/summary", name="dashboard_summary")
    def summary_json(request: Request, run: str) -> Response:
        if session_of(request) is None:
            return to_login(request)
        summary = summarize(status, run)
        if summary is None:
            return JSONResponse({"detail": f"no run {run}"}, status_code=404)
        return JSONResponse(_event(summary), headers={"Cache-Control": "no-store"})

    @router.get("/runs/{run}/events", name="dashboard_events")
    async def events(request: Request, run: str) -> Response:
        if session_of(request) is None:
            return to_login(request)
        first = await run_in_threadpool(summarize, status, run)
        if first is None:
            return JSONResponse({"detail": f"no run {run}"}, status_code=404)

        async def stream() -> AsyncIterator[str]:
            yield f"retry: {RECONNECT_MS}\n\n"
            summary: RunSummary | None = first
            ends = time.monotonic() + STREAM_S
            while summary is not None:
                yield f"data: {json.dumps(_event(summary))}\n\n"
                if summary.state is not RunState.RUNNING or time.monotonic() > ends:
                    return
                await asyncio.sleep(EVENT_INTERVAL_S)
                if await request.is_disconnected() or session_of(request) is None:
                    return
                summary = await run_in_threadpool(summarize, status, run)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.post("/runs/{run}/requeue-form", name="dashboard_requeue")
    async def requeue(request: Request, run: str) -> Response:
        session = session_of(request)
        if session is None:
            return to_login(request)
        form = await _form(request)
        origin = request.headers.get("origin")
        expected = f"{request.url.scheme}://{request.url.netloc}"
        if not secrets.compare_digest(form.get("csrf", ""), sessions.csrf(session)) or (
            origin is not None and origin != expected
        ):
            return HTMLResponse("The form has expired: reload the page and try again.", 403)
        if await run_in_threadpool(status.run_record, run) is None:
            return not_found(request, session, run)
        done = await run_in_threadpool(requeue_run, celery(), status, run)
        target = request.url_for("dashboard_run", run=run).path
        return RedirectResponse(f"{target}?requeued={done.total}", status_code=303)

    return router


def _event(summary: RunSummary) -> dict[str, Any]:
    data = summary.as_dict()
    data["width"] = bar_width(summary)
    return data


async def _form(request: Request) -> dict[str, str]:
    """A small url-encoded form, first value of each field."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


__all__ = ["COOKIE", "Session", "Sessions", "bar_width", "create_dashboard", "safe_next"]
