"""``GET /metrics``: the export's figures in the Prometheus text format (version 0.0.4).

Counters and histograms are the ones the workers record in Redis
(:mod:`worker.state.metrics`); gauges are read when scraped: the Celery queues'
lengths on the broker (asked through kombu, any broker), the polls waiting,
and the recent runs still in progress. A scrape costs a few Redis round trips and
one broker connection, whatever the runs' sizes.

Access: ``Authorization: Bearer <HEEROS_API_TOKEN>``, the API's own token
(Prometheus: ``authorization: {credentials: ...}`` in the scrape config). With
no token configured the endpoint answers 503 rather than open up; a deployment
that scrapes from a private network can pass ``public=True``. The figures
hold invoice counts, export names and Heeros error codes, never a key.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from producer.http.auth import bearer_matches
from worker.celery.app import CeleryApp, create_app
from worker.celery.queues import queue_lengths
from worker.celery.tasks import EXPRESS_QUEUE, POLL_QUEUE, SEND_QUEUE
from worker.config.settings import Settings
from worker.errors import TransientError
from worker.state.metrics import Histogram, Metrics, MetricsSnapshot
from worker.state.store import StatusStore, open_store
from worker.state.windows import Windows

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUEUES = (EXPRESS_QUEUE, SEND_QUEUE, POLL_QUEUE)
RUNS_WATCHED = 50
"""How many of the newest runs ``heeros_runs_in_progress`` looks at."""


def escape(value: str) -> str:
    """A label value escaped as the text format asks."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _histogram(name: str, help_text: str, series: dict[str, Histogram]) -> list[str]:
    lines = _family(name, "histogram", help_text)
    for export, histogram in series.items():
        for bound, count in histogram.cumulative():
            lines.append(f"{name}_bucket{_labels(export=export, le=bound)} {count}")
        lines.append(f"{name}_sum{_labels(export=export)} {histogram.total:.6g}")
        lines.append(f"{name}_count{_labels(export=export)} {histogram.count}")
    return lines


def render(
    snapshot: MetricsSnapshot,
    *,
    queues: dict[str, int] | None,
    polls_pending: int,
    runs_in_progress: int,
    waiting: dict[str, int] | None = None,
) -> str:
    """The whole exposition, HELP and TYPE lines included."""
    lines = _family(
        "heeros_invoices_total", "counter", "Invoices that reached a final state, by export."
    )
    for (export, state), count in sorted(snapshot.invoices.items()):
        lines.append(f"heeros_invoices_total{_labels(export=export, state=state)} {count}")
    lines += _histogram(
        "heeros_send_seconds", "Time a send to Heeros took, by export.", snapshot.send
    )
    lines += _histogram(
        "heeros_confirmation_seconds",
        "Time from the send to Heeros's decision on the invoice, by export.",
        snapshot.confirmation,
    )
    lines += _family("heeros_errors_total", "counter", "Errors Heeros answered with, by code.")
    for code, count in sorted(snapshot.errors.items()):
        lines.append(f"heeros_errors_total{_labels(code=code)} {count}")
    lines += _family("heeros_retries_total", "counter", "Retries after transient failures.")
    for kind, count in sorted(snapshot.retries.items()):
        lines.append(f"heeros_retries_total{_labels(kind=kind)} {count}")
    if queues is not None:
        lines += _family("heeros_queue_length", "gauge", "Tasks waiting in each Celery queue.")
        for queue, length in queues.items():
            lines.append(f"heeros_queue_length{_labels(queue=queue)} {length}")
    lines += _family(
        "heeros_sends_waiting",
        "gauge",
        "Sends of big runs waiting in the store for room in their tenant's window, by tenant.",
    )
    for tenant, count in sorted((waiting or {}).items()):
        lines.append(f"heeros_sends_waiting{_labels(tenant=tenant)} {count}")
    lines += _family("heeros_polls_pending", "gauge", "Sent invoices waiting for a status poll.")
    lines.append(f"heeros_polls_pending {polls_pending}")
    lines += _family(
        "heeros_runs_in_progress", "gauge", f"Runs still exporting (of the newest {RUNS_WATCHED})."
    )
    lines.append(f"heeros_runs_in_progress {runs_in_progress}")
    return "\n".join(lines) + "\n"


def runs_in_progress(store: StatusStore, *, limit: int = RUNS_WATCHED) -> tuple[int, int]:
    """How many of the newest ``limit`` runs are unfinished, and the polls pending.

    Two round trips (see :meth:`StatusStore.runs_in_progress`).
    """
    return store.runs_in_progress(limit=limit)


def bearer_allowed(request: Request, settings: Settings) -> bool:
    """Whether the request carries the API token as ``Authorization: Bearer``."""
    return bearer_matches(request.headers.get("authorization"), settings.api_token)


def create_metrics_router(
    settings: Settings,
    store: StatusStore | None = None,
    *,
    app: CeleryApp | None = None,
    public: bool = False,
) -> APIRouter:
    """A router serving ``GET /metrics``; queue lengths are asked of ``app``'s broker."""
    store = store or open_store(settings)
    metrics = Metrics.for_store(store)
    celery_app = app or create_app(settings)
    router = APIRouter()

    def scrape() -> str:
        snapshot = metrics.read()
        running, polls = runs_in_progress(store)
        queues = queue_lengths(celery_app, QUEUES)
        waiting = Windows.for_store(store).backlogs()
        return render(
            snapshot,
            queues=queues,
            polls_pending=polls,
            runs_in_progress=running,
            waiting=waiting,
        )

    @router.get("/metrics", name="metrics", include_in_schema=False)
    async def serve_metrics(request: Request) -> PlainTextResponse:
        if not public:
            if settings.api_token is None:
                return PlainTextResponse(
                    "metrics need HEEROS_API_TOKEN to be set\n", status_code=503
                )
            if not bearer_allowed(request, settings):
                return PlainTextResponse(
                    "a bearer token is required\n",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        try:
            body = await run_in_threadpool(scrape)
        except TransientError as exc:
            log.warning("metrics scrape failed: %s", exc)
            return PlainTextResponse("Redis or the broker is unavailable\n", status_code=503)
        return PlainTextResponse(body, headers={"Content-Type": CONTENT_TYPE})

    return router


__all__ = [
    "CONTENT_TYPE",
    "bearer_allowed",
    "create_metrics_router",
    "escape",
    "render",
    "runs_in_progress",
]
