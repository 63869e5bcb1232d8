"""Publishing many tasks at once: Celery's own messages, sent in batches on one connection.

Each message is made by ``app.amqp.create_task_message`` and sent by
``app.amqp.send_task_message``, as ``apply_async`` makes and sends it, with the task's
own options (``ignore_result``, time limits, serializer), so a worker cannot tell the
two apart. What an ``apply_async`` loop repeats for every message is done once here:
the producer is taken from the app's pool once, the task's options and route are
looked up once, the queue is declared with the first message only, and the messages
go out in batches: one broker round trip per batch on a transport that batches
(Redis), one message at a time on the others.

Given ``traces``, each message carries its trace context in its headers
(``traceparent``, W3C trace context, through the propagators OpenTelemetry is set up
with): ``apply_async`` gets that from the Celery instrumentation, which this path
bypasses. The worker continues the trace from the header (see
:mod:`worker.celery.tracing`).

Publishing retries a lost connection as ``apply_async`` does; when the broker stays
unreachable the failure is a :class:`~worker.errors.TransientError`. A batch not yet
sent when publishing failed is not sent at all; one that failed on its way may have
been delivered in part.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.utils.nodenames import anon_nodename
from celery.utils.saferepr import saferepr

# BatchPublishError came with kombu 5.7, after the stubs were written.
from kombu.exceptions import BatchPublishError, OperationalError  # type: ignore[attr-defined]
from kombu.utils.uuid import uuid
from opentelemetry.context import Context, attach, detach

from worker.errors import TransientError

BATCH = 500
"""Messages per round trip to the broker (on a transport that batches)."""


def publish_tasks(
    app: Celery,
    name: str,
    calls: Iterable[Sequence[Any]],
    *,
    queue: str,
    batch: int = BATCH,
    traces: Iterable[Context] | None = None,
) -> list[str]:
    """Publish a message of the task ``name`` to ``queue`` for each argument list in
    ``calls``; the new tasks' ids, in the same order.

    ``traces``, when given, holds the trace context each message carries, one per call.
    """
    amqp = app.amqp
    task = app.tasks[name]
    route = amqp.queues[queue]
    options: dict[str, Any] = {"serializer": task.serializer}
    if task.priority is not None:
        options["priority"] = task.priority
    per_task = {
        "time_limit": task.time_limit,
        "soft_time_limit": task.soft_time_limit,
        "ignore_result": task.ignore_result,
        "create_sent_event": app.conf.task_send_sent_event,
        "reply_to": app.thread_oid,
        "origin": anon_nodename(),  # what Celery names this process, asked once
        "kwargsrepr": saferepr({}, amqp.kwargsrepr_maxsize),
    }
    limit = amqp.argsrepr_maxsize
    levels = app.conf.task_repr_maxlevels
    contexts = None if traces is None else iter(traces)
    ids: list[str] = []
    try:
        with app.producer_or_acquire() as producer, producer.batch(batch):
            for call in calls:
                args = tuple(call)
                task_id = uuid()
                message = amqp.create_task_message(
                    task_id, name, args, {}, argsrepr=args_repr(args, limit, levels), **per_task
                )
                # apply_async declares the queue with every message; once is enough.
                declare = [] if ids else [route]
                if contexts is None:
                    amqp.send_task_message(
                        producer, name, message, queue=route, declare=declare, **options
                    )
                else:
                    with carrying(next(contexts, None)) as headers:
                        amqp.send_task_message(
                            producer,
                            name,
                            message,
                            queue=route,
                            declare=declare,
                            headers=headers,
                            **options,
                        )
                ids.append(task_id)
    except (OperationalError, BatchPublishError) as exc:
        raise TransientError(f"the broker did not take the tasks: {exc}") from exc
    return ids


def trace_headers() -> dict[str, str]:
    """The headers that carry the current trace context (a ``traceparent``)."""
    # Imported here: a process that publishes without tracing never needs it.
    from opentelemetry.propagate import inject

    headers: dict[str, str] = {}
    inject(headers)
    return headers


@contextmanager
def carrying(context: Context | None) -> Iterator[dict[str, str] | None]:
    """``context`` made current while a message is sent, and the headers that carry it.

    Current, so that the Celery instrumentation's own publishing span, if it is set
    up in this process, comes under it and writes a header of the same trace.
    """
    if context is None:
        yield None
        return
    token = attach(context)
    try:
        yield trace_headers()
    finally:
        detach(token)


def args_repr(args: tuple[Any, ...], limit: int, levels: int) -> str:
    """The ``argsrepr`` header Celery writes for ``args`` (its ``saferepr``), made faster.

    ``saferepr`` costs more than the rest of a message's making. For arguments that are
    all short printable strings without quotes or backslashes it is exactly ``repr``.
    """
    if all(
        type(arg) is str and arg.isprintable() and "'" not in arg and "\\" not in arg
        for arg in args
    ):
        text = repr(args)
        if len(text) <= limit:
            return text
    return saferepr(args, limit, maxlevels=levels)


__all__ = ["BATCH", "args_repr", "carrying", "publish_tasks", "trace_headers"]
