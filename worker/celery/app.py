"""The Celery app: ``create_app(settings)``, a worker of it, and a ping of a worker node.

Delivery is at least once (late acknowledgement, rejection when a worker is
lost); the idempotency key and the recorded Heeros id make a repeat harmless.
Every countdown stays well below the broker's visibility timeout, which is set
explicitly (see :class:`worker.config.settings.Settings`).

On RabbitMQ the app declares its queues (:func:`worker.celery.broker.declared_queues`):
quorum queues unless ``HEEROS_RABBITMQ_QUEUE_TYPE=classic``. On quorum queues Celery
holds a countdown in RabbitMQ (native delayed delivery, in whole seconds:
:class:`ExporterCelery`) and publishes with confirms, so that a task the broker did not
take is an error rather than a loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

from celery import Celery
from celery.app.amqp import AMQP, Queues
from celery.result import AsyncResult
from celery.signals import setup_logging, task_received, worker_init, worker_shutdown

from worker.celery.broker import QUORUM, declared_queues, transport_for
from worker.celery.heartbeat import PollHeartbeat
from worker.celery.reconciliation import RECONCILE_QUEUE
from worker.celery.reconciliation import RECONCILE_TASK as RECONCILE_TASK  # registers the task
from worker.celery.recovery import hold_received, leave
from worker.celery.runtime import Runtime
from worker.celery.tasks import (
    BATCH_TASK,
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

QUEUES = (EXPRESS_QUEUE, SEND_QUEUE, POLL_QUEUE, RECONCILE_QUEUE)
"""Every queue of the exporter, as declared on RabbitMQ."""


class DeclaredQueues(Queues):
    """Celery's queues, where adding a declared queue by its name keeps its declaration.

    Celery's ``select_add("name")`` puts a new classic queue of that name in place of
    the one ``task_queues`` declares: a worker that takes the reconcile queue as it
    starts would declare it classic beside the quorum ones (and be refused where it
    exists as a quorum queue).
    """

    def select_add(self, queue: Any, **kwargs: Any) -> Any:
        if isinstance(queue, str) and not kwargs and queue in self:
            queue = self[queue]
        return super().select_add(queue, **kwargs)


class ExporterAMQP(AMQP):
    """Celery's AMQP helpers, with :class:`DeclaredQueues`."""

    queues_cls = DeclaredQueues


class ExporterCelery(Celery):
    """Celery, with countdowns in whole seconds up when they go through RabbitMQ's
    native delayed delivery (quorum queues), and :class:`DeclaredQueues`.

    Celery routes a countdown there as ``int(countdown)`` seconds and refuses one under
    a second (a ``ValueError`` from kombu's routing key): a retry held back 0.3 s would
    fail to publish, and one of 2.7 s would come 0.7 s early, held in the worker's memory
    until its time. Rounded up, it is neither.
    """

    amqp_cls = "worker.celery.app:ExporterAMQP"
    whole_second_delays = False
    """Set by :func:`create_app` when the app's queues are quorum queues."""

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        countdown: float | None = None,
        eta: datetime | None = None,
        *more: Any,
        **options: Any,
    ) -> AsyncResult[Any]:
        if self.whole_second_delays:
            countdown, eta = whole_seconds(countdown, eta)
        return super().send_task(name, args, kwargs, countdown, eta, *more, **options)


def whole_seconds(
    countdown: float | None, eta: datetime | None, *, now: datetime | None = None
) -> tuple[float | None, datetime | None]:
    """A delay as whole seconds, rounded up: a countdown, or an ETA turned into one."""
    if eta is not None:
        moment = now or datetime.now(UTC)
        if eta.tzinfo is None:
            eta = eta.replace(tzinfo=UTC)
        countdown, eta = (eta - moment).total_seconds(), None
    if countdown is None or countdown <= 0:
        return None, None
    return float(math.ceil(countdown)), None


def create_app(settings: Settings, *, runtime: Runtime | None = None) -> Celery:
    """The Celery app of the exporter, configured from ``settings``."""
    app = ExporterCelery("heeros", set_as_current=True)
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
            BATCH_TASK: {"queue": SEND_QUEUE},
            POLL_TASK: {"queue": POLL_QUEUE},
            SWEEP_TASK: {"queue": POLL_QUEUE},
            RECONCILE_TASK: {"queue": RECONCILE_QUEUE},
        },
        worker_prefetch_multiplier=1,
        # Events cost a fifth of a worker's CPU; Flower and celery-exporter switch them on
        # at run time (`enable_events`), or set HEEROS_TASK_EVENTS=true to send them always.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    queues = declared_queues(settings.broker, settings.rabbitmq_queue_type, QUEUES)
    if queues is not None:
        app.conf.task_queues = queues
    if queues is not None and settings.rabbitmq_queue_type == QUORUM:
        # A publish returns once the queue's replicas have the message: one not taken
        # is an error, not a silent loss (Celery's advice for quorum queues).
        app.conf.broker_transport_options = {
            **app.conf.broker_transport_options,
            "confirm_publish": True,
        }
        app.whole_second_delays = True
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


__all__ = [
    "QUEUES",
    "CeleryApp",
    "DeclaredQueues",
    "ExporterAMQP",
    "ExporterCelery",
    "create_app",
    "ping_node",
    "run_worker",
    "whole_seconds",
]
