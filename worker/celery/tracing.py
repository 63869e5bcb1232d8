"""The tasks in their invoices' traces (see :mod:`worker.tracing` for the whole trace).

A worker traces when the OTEL_* variables ask: :func:`start_worker_tracing` runs as
the worker starts (Celery's ``worker_init``), sets up OpenTelemetry and the Celery
instrumentation, which gives each task run a span of its own (``run/<task>``) and
carries the trace in the messages ``apply_async`` sends (a retry, a poll's fan-out).

:func:`task_span` is the span of a task's work on one invoice. Under the Celery
instrumentation it is a child of the task's span; without it (a task run by hand, as
in the tests) it continues the trace named by the ``traceparent`` header of the task's
message, which :mod:`worker.celery.publisher` writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from celery import Task
from celery.exceptions import Retry
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span

from worker.tracing import ITEM, RUN, configure_tracing, failed, span, tracing_enabled

WORKER_SERVICE = "heeros-export-worker"
"""The service name of a worker's spans, unless ``OTEL_SERVICE_NAME`` gives one."""


def start_worker_tracing(**_: object) -> None:
    """Trace this worker process as the OTEL_* variables say; nothing unless they ask."""
    provider = configure_tracing(WORKER_SERVICE)
    if provider is not None:
        # Imported only when tracing: the instrumentation costs a worker that does not.
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        # The instrumentation's constructor has no annotations.
        CeleryInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]


class _RequestGetter(Getter[Any]):
    """Reads a task request's headers: Celery makes each an attribute of the request."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = getattr(carrier, key, None)
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Any) -> list[str]:
        return []


_REQUEST = _RequestGetter()


def message_context(task: Task[Any, Any]) -> Context | None:
    """The trace a task's work continues: the current one when the Celery instrumentation
    made the task's span, else the one the task's message carries (None: the current)."""
    if trace.get_current_span().get_span_context().is_valid:
        return None
    from opentelemetry.propagate import extract

    return extract(task.request, getter=_REQUEST)


def task_span(task: Task[Any, Any], name: str, run: str, item: str) -> AbstractContextManager[Span]:
    """The span of ``task``'s work on one item, in the item's trace.

    A retry is an event on it (``retry``, with its delay and reason), not a failure;
    any other exception is recorded and fails the span.
    """
    if not tracing_enabled():
        return span(name)  # the shared do-nothing context
    return _task_span(task, name, run, item)


@contextmanager
def _task_span(task: Task[Any, Any], name: str, run: str, item: str) -> Iterator[Span]:
    with span(
        name,
        context=message_context(task),
        attributes={RUN: run, ITEM: item},
        record_exception=False,
    ) as current:
        try:
            yield current
        except Retry as retry:
            when = retry.when
            # task.retry() raises the Retry itself, while the tasks handle the error.
            reason = retry.exc or retry.__cause__ or retry.__context__
            current.add_event(
                "retry",
                {
                    "heeros.retry_in_s": float(when) if isinstance(when, int | float) else 0.0,
                    "heeros.reason": "" if reason is None else str(reason),
                },
            )
            raise
        except BaseException as error:
            failed(current, error)
            raise


__all__ = ["WORKER_SERVICE", "message_context", "start_worker_tracing", "task_span"]
