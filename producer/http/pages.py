"""What the dashboard's pages show and read: the templates, their headers, figures, forms.

Templates are Jinja2, autoescaped, one per page under ``templates/`` (fragments
start with ``_``). Every page gets a fresh nonce for its inline script and a
strict Content-Security-Policy; links are built from route names, so the
dashboard works under any prefix.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from producer.http.auth import Session, Sessions
from worker.state.aggregator import RunState, RunSummary

TEMPLATES = Path(__file__).with_name("templates")
MAX_FORM_BYTES = 4096


def bar_width(summary: RunSummary) -> float:
    """The progress bar's filled share in percent: done of total while running, else full."""
    if summary.state is not RunState.RUNNING or not summary.total:
        return 100.0
    return float(int(1000 * (summary.exported + summary.failed) / summary.total) / 10)


def clock(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp)) if stamp else ""


def summary_event(summary: RunSummary) -> dict[str, Any]:
    """A run's figures as the live updates carry them: the summary and the bar's width."""
    data = summary.as_dict()
    data["width"] = bar_width(summary)
    return data


def security_headers(nonce: str) -> dict[str, str]:
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


def links(request: Request) -> Callable[..., str]:
    """``link(name, query, **params)`` for the templates: a route's path under any prefix."""

    def link(name: str, query: dict[str, str] | None = None, **params: str) -> str:
        path = request.url_for(name, **params).path
        return f"{path}?{urlencode(query)}" if query else path

    return link


class Pages:
    """Renders the templates with what every page needs: links, the session, its CSRF token."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._templates = Jinja2Templates(
            env=jinja2.Environment(
                loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True
            )
        )
        self._templates.env.filters["clock"] = clock

    def render(
        self,
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
            "link": links(request),
            "session": session,
            "csrf": self._sessions.csrf(session) if session else "",
            **context,
        }
        return self._templates.TemplateResponse(
            request, name, full, status_code=status_code, headers=security_headers(nonce)
        )

    def missing(self, request: Request, session: Session, run: str) -> HTMLResponse:
        """The 404 page of a run that does not exist."""
        return self.render(request, "missing.html", {"run": run}, session=session, status_code=404)


async def read_form(request: Request, *, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """A small url-encoded form, first value of each field; nothing when over ``limit``."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return {}
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


__all__ = [
    "MAX_FORM_BYTES",
    "TEMPLATES",
    "Pages",
    "bar_width",
    "clock",
    "links",
    "read_form",
    "security_headers",
    "summary_event",
]
