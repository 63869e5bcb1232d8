"""The Celery tasks: thin, like web views. Each decodes its arguments, calls the
pipeline and maps errors to retries; the logic lives in :mod:`worker.pipeline`.

``heeros.export_invoice`` sends one invoice (queue ``heeros.send``);
``heeros.poll_due`` checks a batch of sent invoices whose status is due (queue
``heeros.poll``): checking many in one task is cheaper than a task per poll,
and no task ever sleeps waiting for Heeros.

When tracing is on (:mod:`worker.tracing`), a send is the span ``export_invoice`` in
its invoice's trace, and the trace is kept with the item once it is sent, so that
each poll of it, in whichever batch, is a span ``check`` in the same trace.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any, cast

from celery import Celery, Task, shared_task
from opentelemetry.trace import Link, get_current_span

from worker.celery.publisher import publish_tasks, trace_headers
from worker.celery.runtime import Runtime
from worker.celery.tracing import task_span
from worker.errors import (
    ExportError,
    HeerosRateLimited,
    PermanentError,
    Throttled,
    TransientError,
)
from worker.pipeline import Outcome, check_record, fail_item, send_invoice
from worker.state.keys import State
from worker.state.leases import delivery_of
from worker.state.store import ItemRecord, StatusStore
from worker.state.windows import Windows
from worker.tracing import (
    ITEM,
    OUTCOME,
    RUN,
    current_traceparent,
    failed,
    span,
    tracing_enabled,
)

log = logging.getLogger(__name__)

SEND_TASK = "heeros.export_invoice"
POLL_TASK = "heeros.poll_due"
SWEEP_TASK = "heeros.sweep_stale"
SEND_QUEUE = "heeros.send"
EXPRESS_QUEUE = "heeros.express"
"""Sends that go ahead of a big run's backlog: a dead worker's sends taken back.
Workers take from it and from :data:`SEND_QUEUE` in turn."""
POLL_QUEUE = "heeros.poll"
POLL_FAN_OUT = 2
"""Poll tasks a full batch queues after itself."""


def runtime_of(task: Task[Any, Any]) -> Runtime:
    """The worker process's runtime, kept on the app by ``create_app``."""
    return cast(Runtime, task.app.heeros_runtime)  # type: ignore[attr-defined]


def retry_delay(retries: int, error: ExportError, *, base: float, cap: float) -> float:
    """Exponential backoff with jitter; a 429's Retry-After is a floor."""
    delay = float(min(cap, base * (2 ** min(retries, 20))) * random.uniform(0.5, 1.0))
    if isinstance(error, HeerosRateLimited):
        delay = max(delay, error.retry_after)
    return delay


@shared_task(
    bind=True,
    name=SEND_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def export_invoice(self: Task[Any, Any], run: str, item: str, failures: int = 0) -> str:
    """Send one invoice of a run to its export in Heeros."""
    if not self.request.retries:
        take_turn(self, run, item)
    try:
        with task_span(self, "export_invoice", run, item) as current:
            outcome = export_item(self, run, item, failures)
            current.set_attribute(OUTCOME, outcome)
            return outcome
    finally:
        release(self)


def publish_window(app: Celery, sends: Sequence[tuple[str, str]]) -> int:
    """Publish the sends a tenant's window let in (:mod:`worker.state.windows`) to the
    send queue; how many."""
    if sends:
        publish_tasks(app, SEND_TASK, sends, queue=SEND_QUEUE)
    return len(sends)


def take_turn(task: Task[Any, Any], run: str, item: str) -> int:
    """The send starts: struck from its tenant's window, whose next sends are published
    (none for a send of no window). A failure only delays them: the recovery beat's
    top-up lets them in (:func:`worker.celery.dispatch.top_up`)."""
    runtime = runtime_of(task)
    try:
        let_in = Windows.for_store(runtime.store).take(
            run, item, size=runtime.settings.dispatch_window, now=time.time()
        )
        return publish_window(task.app, let_in)
    except TransientError as error:
        log.info(
            "run=%s item=%s: its window's next sends wait for the top-up: %s", run, item, error
        )
        return 0


def release(task: Task[Any, Any]) -> None:
    """Strike the send's message from the worker's lease (:mod:`worker.celery.recovery`):
    it ends here, acknowledged, or followed by its retry's own message."""
    request = task.request
    if request.id is None:
        return
    runtime = runtime_of(task)
    try:
        runtime.leases.release(runtime.worker_id, delivery_of(request.id, request.retries or 0))
    except TransientError as error:
        # Left in the lease: should the worker die, the item is looked at and skipped.
        log.info("run=%s: a finished send stays in the worker's lease: %s", request.id, error)


def export_item(task: Task[Any, Any], run: str, item: str, failures: int) -> str:
    """The send task's work: the pipeline's send, its errors mapped to retries."""
    runtime = runtime_of(task)
    settings = runtime.settings
    try:
        outcome = send_invoice(
            runtime.store,
            runtime.resolve,
            run,
            item,
            timing=runtime.timing,
            metrics=runtime.metrics,
        )
    except Throttled as error:
        # Held back by the shared limits: not a failure, and not counted as one.
        delay = error.retry_after + random.uniform(0.0, 0.25)
        log.debug("run=%s item=%s held back %.2f s: %s", run, item, delay, error)
        raise task.retry(countdown=delay, kwargs={"failures": failures}, **retry_trace()) from error
    except TransientError as error:
        if failures >= settings.retry_max:
            record = runtime.store.item(run, item)
            if record is not None:
                fail_item(runtime.store, record, error, metrics=runtime.metrics)
            return "failed"
        if error.code is not None:
            runtime.metrics.count_error(error.code)
        runtime.metrics.count_retry("send")
        delay = retry_delay(failures, error, base=settings.retry_base_s, cap=settings.retry_max_s)
        log.info("run=%s item=%s retry %d in %.1f s: %s", run, item, failures + 1, delay, error)
        raise task.retry(
            countdown=delay, kwargs={"failures": failures + 1}, **retry_trace()
        ) from error
    except PermanentError as error:
        # A permanent error outside the pipeline's own handling (configuration).
        record = runtime.store.item(run, item)
        if record is not None:
            fail_item(runtime.store, record, error, metrics=runtime.metrics)
        return "failed"
    if outcome is Outcome.SENT:
        keep_trace(runtime.store, run, item)
    return outcome.value


def retry_trace() -> dict[str, Any]:
    """The retry's options that carry the trace on (none while tracing is off)."""
    if not tracing_enabled():
        return {}
    return {"headers": trace_headers()}


def keep_trace(store: StatusStore, run: str, item: str) -> None:
    """Keep the send's trace with the sent item: its polls run in batches of their own."""
    traceparent = current_traceparent() if tracing_enabled() else None
    if traceparent is None:
        return
    try:
        store.set_traceparent(run, item, traceparent)
    except TransientError as error:
        # The invoice is sent and recorded; only its polls' place in the trace is lost.
        log.info("run=%s item=%s trace not kept: %s", run, item, error)


def check_claimed(
    runtime: Runtime,
    run: str,
    item: str,
    record: ItemRecord | None,
    *,
    traceparent: str | None = None,
    links: Sequence[Link] = (),
) -> None:
    """Check one claimed poll; a failure is recorded or rescheduled, never raised.

    The check is a span in the trace ``traceparent`` names (the send's), linked to
    ``links`` (the poll task's span).
    """
    with span(
        "check", traceparent=traceparent, links=links, attributes={RUN: run, ITEM: item}
    ) as current:
        try:
            outcome = check_record(
                runtime.store,
                runtime.resolve,
                run,
                item,
                record,
                timing=runtime.timing,
                metrics=runtime.metrics,
            )
            current.set_attribute(OUTCOME, outcome.value)
        except TransientError as error:
            failed(current, error)
            if error.code is not None:
                runtime.metrics.count_error(error.code)
            runtime.metrics.count_retry("poll")
            log.info("run=%s item=%s status not known yet: %s", run, item, error)
        except PermanentError as error:
            failed(current, error)
            record = runtime.store.item(run, item)
            if record is not None:
                fail_item(runtime.store, record, error, metrics=runtime.metrics)


def check_batch(runtime: Runtime, claimed: list[tuple[str, str]]) -> None:
    """Check claimed polls together: their items read in one round trip, the status
    requests sent side by side on the process's poll threads."""
    if not claimed:
        return
    records = runtime.store.records(claimed)
    traceparents: list[str | None] = [None] * len(claimed)
    links: list[Link] = []
    if tracing_enabled():
        traceparents = runtime.store.traceparents(claimed)
        task = get_current_span().get_span_context()
        links = [Link(task)] if task.is_valid else []
    checks = [
        runtime.poll_pool.submit(
            check_claimed, runtime, run, item, record, traceparent=traceparent, links=links
        )
        for (run, item), record, traceparent in zip(claimed, records, traceparents, strict=True)
    ]
    for check in checks:
        check.result()


@shared_task(bind=True, name=POLL_TASK, acks_late=True, ignore_result=True)
def poll_due(self: Task[Any, Any]) -> int:
    """Check the status of up to a batch of sent invoices whose poll is due.

    The batch's status requests go out together, on the process's poll threads: a
    poll task holds its worker slot for about one Heeros answer, not one per invoice.
    """
    runtime = runtime_of(self)
    settings = runtime.settings
    claimed = runtime.store.claim_polls(
        now=time.time(), limit=settings.poll_batch, lease_s=2 * settings.read_timeout_s + 5
    )
    if len(claimed) == settings.poll_batch:
        # A full batch means more are due: fan out, two for one, while the backlog lasts,
        # so that a backlog of n batches is taken in about log2(n) steps, not n.
        for _ in range(POLL_FAN_OUT):
            self.apply_async()
    check_batch(runtime, claimed)
    return len(claimed)


@shared_task(bind=True, name=SWEEP_TASK, ignore_result=True)
def sweep_stale(self: Task[Any, Any], limit: int = 500) -> int:
    """Queue again the unfinished items no task holds any more (a message lost in a crash)."""
    runtime = runtime_of(self)
    store = runtime.store
    now = time.time()
    stale_after = runtime.settings.stale_after_s
    # While sends wait in the queue, an old queued item is most likely among them.
    backlog = runtime.queue_length(SEND_QUEUE) > 0
    older_than = now - (stale_after * 4 if backlog else stale_after)
    recovered = 0
    stale = store.stale_items(older_than=older_than, limit=limit)
    # A send of a run with sends waiting in a backlog (worker.state.windows) is most
    # likely waiting there: it is looked at once the backlog has been let out.
    waiting = Windows.for_store(store).waiting(sorted({run for run, _ in stale}))
    for run, item in stale:
        if waiting[run]:
            continue
        record = store.item(run, item)
        if record is None or record.state.final:
            store.forget_inflight(run, item)
        elif record.state is State.SENT:
            if not store.has_poll(run, item):
                store.schedule_poll(run, item, now)
                recovered += 1
        else:
            export_invoice.apply_async((run, item))
            recovered += 1
    if recovered:
        log.warning("sweep: %d unfinished items had no task and were queued again", recovered)
    return recovered


__all__ = [
    "EXPRESS_QUEUE",
    "POLL_QUEUE",
    "POLL_TASK",
    "SEND_QUEUE",
    "SEND_TASK",
    "SWEEP_TASK",
    "check_batch",
    "check_claimed",
    "export_invoice",
    "export_item",
    "keep_trace",
    "poll_due",
    "publish_window",
    "release",
    "retry_trace",
    "sweep_stale",
    "take_turn",
]
