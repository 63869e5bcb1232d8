"""The Celery app: ``create_app(settings)``; ``celery -A worker.celery.app worker`` works too.

Delivery is at least once (late acknowledgement, rejection when a worker is
lost); the idempotency key and the recorded Heeros id make a repeat harmless.
Every countdown stays well below the broker's visibility timeout, which is set
explicitly (see :class:`worker.config.settings.Settings`).
"""

from __future__ import annotations

from celery import Celery

from worker.celery.broker import transport_for
from worker.celery.heartbeat import PollHeartbeat
from worker.celery.runtime import Runtime
from worker.celery.tasks import POLL_QUEUE, POLL_TASK, SEND_QUEUE, SEND_TASK, SWEEP_TASK
from worker.config.settings import Settings


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
    app.steps["worker"].add(PollHeartbeat)
    import worker.celery.tasks  # noqa: F401  (registers the tasks on this app)

    return app


def __getattr__(name: str) -> Celery:
    # `celery -A worker.celery.app` asks for `app`: build it then, from the environment.
    if name in ("app", "celery"):
        application = create_app(Settings())
        globals()[name] = application
        return application
    raise AttributeError(name)


__all__ = ["create_app"]
