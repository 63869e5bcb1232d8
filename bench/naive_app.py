"""The naive Celery exporter the product is measured against, and a bare no-op task.

``naive.export`` is what a first Celery exporter looks like: one task per
invoice, carrying the invoice itself, that renders it with the project's own
code, sends it with the project's own client and then sleeps between status
polls until Heeros has decided. It holds its thread for the whole wait.

``naive.noop`` does nothing: a drain of no-op tasks is the most this machine's
Celery workers can do, the ceiling the product is compared with.

Both run in their own worker processes, with the product's pool, concurrency
and delivery settings::

    python -m celery -A bench.naive_app worker -P threads -c 64 -Q naive,noop

Each export counts its outcome in Redis (``bench:naive:<outcome>``), which is
how the benchmark sees the end of its sample.
"""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import Any

import redis
from celery import Celery

from worker.config import Export, load_export_config
from worker.config.settings import Settings
from worker.documents.finvoice import render_finvoice
from worker.documents.invoice import parse_invoice
from worker.errors import ExportError
from worker.heeros.client import HeerosClient
from worker.heeros.remote import RemoteState
from worker.pipeline import idempotency_key

EXPORT_TASK = "naive.export"
NOOP_TASK = "naive.noop"
EXPORT_QUEUE = "naive"
NOOP_QUEUE = "noop"
COUNTER = "bench:naive:"
"""Prefix of the outcome counters: ``exported``, ``incomplete``, ``failed``, ``unconfirmed``."""


def create_app(settings: Settings) -> Celery:
    """The naive exporter's app, with the product's broker and delivery settings."""
    app = Celery("naive", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_default_queue=EXPORT_QUEUE,
        task_routes={NOOP_TASK: {"queue": NOOP_QUEUE}},
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
    )
    local = threading.local()
    counters = redis.Redis.from_url(settings.redis_url)

    @cache
    def target() -> Export:
        if settings.export_config is None:
            raise RuntimeError("set HEEROS_EXPORT_CONFIG to the export configuration file")
        return load_export_config(settings.export_config).exports[0]

    def client() -> HeerosClient:
        # One client per thread, as the product's runtime keeps them.
        found: HeerosClient | None = getattr(local, "client", None)
        if found is None:
            export = target()
            found = local.client = HeerosClient(
                base_url=settings.base_url,
                office_code=export.office_code,
                customer_code=export.customer_code,
                client_identity=export.file_transfer.client_identity,
                client_key=export.require_client_key(),
                connect_timeout=settings.connect_timeout_s,
                read_timeout=settings.read_timeout_s,
            )
        return found

    @app.task(name=EXPORT_TASK)
    def export(data: dict[str, Any]) -> str:
        outcome = "failed"
        try:
            invoice = parse_invoice(data)
            chosen = target()
            document = render_finvoice(invoice, chosen.transform, encoding=chosen.encoding)
            heeros = client()
            heeros_id = heeros.send(
                invoice.number,
                document,
                chosen.options,
                idempotency_key(chosen, invoice.number),
                encoding=chosen.encoding,
            )
            deadline = time.monotonic() + settings.confirm_deadline_s
            outcome = "unconfirmed"
            while time.monotonic() < deadline:
                time.sleep(settings.poll_first_s)
                state = heeros.status(heeros_id).state
                if state is not RemoteState.PENDING:
                    outcome = "exported" if state is RemoteState.CONFIRMED else state.value
                    break
        except ExportError:
            outcome = "failed"
        counters.incr(COUNTER + outcome)
        return outcome

    @app.task(name=NOOP_TASK)
    def noop() -> None:
        return None

    return app


def __getattr__(name: str) -> Celery:
    # `celery -A bench.naive_app` asks for `app`: build it then, from the environment.
    if name in ("app", "celery"):
        application = create_app(Settings())
        globals()[name] = application
        return application
    raise AttributeError(name)


__all__ = ["COUNTER", "EXPORT_QUEUE", "EXPORT_TASK", "NOOP_QUEUE", "NOOP_TASK", "create_app"]
