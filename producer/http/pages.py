"""What the dashboard's pages show and read: the templates, their headers, figures, forms.

Templates are Jinja2, autoescaped, one per page under ``templates/`` (fragments
start with ``_``). Every page gets a fresh nonce for its inline script and a
strict Content-Security-Policy; links are built from route names, so the
dashboard works under any prefix.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from producer.http.auth import Session, Sessions
from worker.state.aggregator import MAX_CURSOR, Pace, RunState, RunSummary, duration

TEMPLATES = Path(__file__).with_name("templates")
MAX_FORM_BYTES = 4096
CHART_WIDTH = 240
CHART_HEIGHT = 48


def bar_width(summary: RunSummary) -> float:
    """The progress bar's filled share in percent: done of total while running, else full."""
    if summary.state is not RunState.RUNNING or not summary.total:
        return 100.0
    return float(int(1000 * (summary.exported + summary.failed) / summary.total) / 10)


def clock(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp)) if stamp else ""


def moment(stamp: float) -> str:
    """The time of day of ``stamp`` (UTC), for narrow columns; ``clock`` gives the date too."""
    return time.strftime("%H:%M:%S", time.gmtime(stamp)) if stamp else ""


def chart_points(samples: Sequence[tuple[float, int]], total: int) -> str:
    """The progress chart's polyline: done against time, in a CHART_WIDTH x CHART_HEIGHT box.

    Empty with fewer than two samples: there is no line to draw yet.
    """
    if len(samples) < 2 or total <= 0:
        return ""
    start, end = samples[0][0], samples[-1][0]
    span = (end - start) or 1.0
    points = []
    for at, done in samples:
        x = (at - start) / span * CHART_WIDTH
        y = CHART_HEIGHT - min(max(done, 0), total) / total * CHART_HEIGHT
        points.append(f"{x:.1f},{y:.1f}")
    return " ".join(points)


def pace_figures(summary: RunSummary, found: Pace) -> dict[str, str]:
    """The rate, the time left and the chart as a page and the live updates show them."""
    samples = found.samples
    span = samples[-1][0] - samples[0][0] if len(samples) > 1 else 0.0
    return {
        "rate": found.rate_text,
        "left": found.left_text,
        "chart": chart_points(samples, summary.total),
        "span": f"Progress over {duration(span)}" if span else "",
    }


def summary_event(summary: RunSummary, found: Pace | None = None) -> dict[str, Any]:
    """A run's figures as the live updates carry them: the summary, the bar's width and,
    given its pace, the rate, the time left and the chart's points."""
    data = summary.as_dict()
    data["width"] = bar_width(summary)
    if found is not None:
        data["pace"] = pace_figures(summary, found)
    return data


def page_cursor(text: str) -> int | None:
    """A page link's cursor, or None when it is not one (a decimal number Redis accepts)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_CURSOR)):
        return None
    cursor = int(text)
    return cursor if cursor <= MAX_CURSOR else None


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
        self._templates.env.filters["moment"] = moment
        self._templates.env.globals["chart"] = {"width": CHART_WIDTH, "height": CHART_HEIGHT}

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

    def refused(
        self, request: Request, session: Session, run: str, reason: str, *, status_code: int
    ) -> HTMLResponse:
        """A page that says why a request about a run was refused (400, 409), and links back."""
        context = {"run": run, "reason": reason}
        return self.render(
            request, "refused.html", context, session=session, status_code=status_code
        )


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
    "CHART_HEIGHT",
    "CHART_WIDTH",
    "MAX_FORM_BYTES",
    "TEMPLATES",
    "Pages",
    "bar_width",
    "chart_points",
    "clock",
    "links",
    "moment",
    "pace_figures",
    "page_cursor",
    "read_form",
    "security_headers",
    "summary_event",
]
