"""The Celery app: ``create_app(settings)``, a worker of it, and a ping of a worker node.

Delivery is at least once (late acknowledgement, rejection when a worker is
lost); the idempotency key and the recorded Heeros id make a repeat harmless.
Every countdown stays well below the broker's visibility timeout, which is set
explicitly (see :class:`worker.config.settings.Settings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from celery import Celery
from celery.signals import setup_logging, task_received, worker_init, worker_shutdown

from worker.celery.broker import transport_for
from worker.celery.heartbeat import PollHeartbeat
from worker.celery.reconciliation import RECONCILE_TASK as RECONCILE_TASK  # registers the task
from worker.celery.recovery import hold_received, leave
from worker.celery.runtime import Runtime
from worker.celery.tasks import (
    EXPRESS_QUEUE,
    POLL_QUEUE,
    POLL_TASK,
    SEND_QUEUE,
    SEND_TASK,
    SWEEP_TASK,
)
from worker.celery.tracing import start_worker_tracing
from worker.config.settings import Settings, celery_broker_url
from worker.logs import configure_logging

CeleryApp: TypeAlias = Celery
"""The app's type, for code outside this package that takes an app."""


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> Celery:
    """The Celery app of the exporter, configured from ``settings``."""
    app = Celery("heeros", set_as_current=True)
    app.conf.update(
        broker_url=settings.broker,
        broker_transport=transport_for(settings.broker),
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "max_connections": settings.concurrency * 2 + 10,
            "health_check_interval": 10,
            "socket_keepalive": True,
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue=SEND_QUEUE,
        task_routes={
            SEND_TASK: {"queue": SEND_QUEUE},
            POLL_TASK: {"queue": POLL_QUEUE},
            SWEEP_TASK: {"queue": POLL_QUEUE},
        },
        worker_prefetch_multiplier=1,
        # Events cost a fifth of a worker's CPU; Flower and celery-exporter switch them on
        # at run time (`enable_events`), or set HEEROS_TASK_EVENTS=true to send them always.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    app.heeros_runtime = runtime or Runtime(settings)  # type: ignore[attr-defined]
    app.steps["worker"].add(PollHeartbeat)  # the tasks are registered by importing tasks.py
    # A worker traces as the OTEL_* variables say, set up once as it starts (no-op otherwise).
    worker_init.connect(start_worker_tracing, weak=False, dispatch_uid="heeros-tracing")
    # The sends each worker holds, in the status store (see worker.celery.recovery).
    task_received.connect(hold_received, weak=False, dispatch_uid="heeros-lease-hold")
    worker_shutdown.connect(leave, weak=False, dispatch_uid="heeros-lease-leave")
    return app


def run_worker(settings: Settings, arguments: Sequence[str] = ()) -> None:
    """Run a worker on its three queues, threads as its pool, with structured logs."""
    app = create_app(settings)
    setup_logging.connect(_structured_logs, weak=False)
    argv = ["worker", "-Q", f"{EXPRESS_QUEUE},{SEND_QUEUE},{POLL_QUEUE}", "-P", "threads"]
    app.worker_main(argv=[*argv, "-c", str(settings.concurrency), *arguments])


def _structured_logs(loglevel: str | int | None = None, **_: object) -> None:
    # Celery asks for its logging to be set up; one key=value line per event instead.
    configure_logging(loglevel or "INFO")


def ping_node(broker: str, node: str, *, timeout: float = 0.5) -> bool:
    """Whether the worker node answers a ping over ``broker`` (a URL as the settings take it)."""
    url = celery_broker_url(broker)
    app = Celery("ping", broker=url, set_as_current=False)
    app.conf.broker_transport = transport_for(url)
    try:
        return bool(app.control.ping(destination=[node], timeout=timeout))
    finally:
        app.close()


def __getattr__(name: str) -> Celery:
    # `celery -A worker.celery.app` asks for `app`: build it then, from the environment.
    if name in ("app", "celery"):
        application = create_app(Settings())
        globals()[name] = application
        return application
    raise AttributeError(name)


__all__ = ["CeleryApp", "create_app", "ping_node", "run_worker"]
