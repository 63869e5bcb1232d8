"""The Celery tasks: thin, like web views. Each decodes its arguments, calls the
pipeline and maps errors to retries; the logic lives in :mod:`worker.pipeline`.

``heeros.export_invoice`` sends one invoice (queue ``heeros.send``, or
``heeros.express``); ``heeros.export_batch`` sends the few invoices of one tenant a
window let out together (:mod:`worker.state.windows`), one after another, so that a
big run costs the broker and the workers one message per :data:`SEND_BATCH` sends;
``heeros.poll_due`` checks a batch of sent invoices whose status is due (queue
``heeros.poll``): checking many in one task is cheaper than a task per poll,
and no task ever sleeps waiting for Heeros.

A send of a batch that must wait (a transient error) goes on as a message of its own,
``heeros.export_invoice`` with its failures so far; one the tenant's limits hold back
takes the batch's sends not yet tried with it, as one message due when the limits let
them go.

When tracing is on (:mod:`worker.tracing`), a send is the span ``export_invoice`` in
its invoice's trace, and the trace is kept with the item once it is sent, so that
each poll of it, in whichever batch, is a span ``check`` in the same trace.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from typing import Any, cast

from celery import Celery, Task, shared_task
from kombu.exceptions import OperationalError
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
from worker.pipeline import Heeros, Outcome, Resolve, Target, check_record, fail_item, send_invoice
from worker.state.keys import State
from worker.state.leases import delivery_of
from worker.state.limiter import LimitedHeeros
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
BATCH_TASK = "heeros.export_batch"
SEND_BATCH = 8
"""Sends of one tenant's window in one message (``heeros.export_batch``): the message's
cost (the broker's, the worker's lease and start) is shared by that many sends, and a
window of 200 is still 25 messages, taken by as many threads."""
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
        take_turn(self, [(run, item)])
    try:
        with task_span(self, "export_invoice", run, item) as current:
            outcome = export_item(self, run, item, failures)
            current.set_attribute(OUTCOME, outcome)
            return outcome
    finally:
        release(self)


@shared_task(
    bind=True,
    name=BATCH_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def export_batch(self: Task[Any, Any], sends: Sequence[Sequence[str]]) -> list[str]:
    """Send a few invoices of one tenant (``[run, item]`` each), one after another."""
    pairs = [(str(run), str(item)) for run, item in sends]
    outcomes: list[str] = []
    if not self.request.retries:
        take_turn(self, pairs)
    try:
        for index, (run, item) in enumerate(pairs):
            with task_span(self, "export_invoice", run, item) as current:
                outcome = attempt(runtime_of(self), run, item, 0)
                if isinstance(outcome, Later):
                    if outcome.held_back:
                        # The tenant's limits hold the rest back as well: they wait together.
                        outcomes += queue_later(self, pairs[index:], outcome)
                        current.set_attribute(OUTCOME, outcomes[-1])
                        break
                    outcome = queue_later(self, [(run, item)], outcome)[0]
                current.set_attribute(OUTCOME, outcome)
                outcomes.append(outcome)
    finally:
        release(self, len(pairs))
    return outcomes


def publish_window(app: Celery, sends: Sequence[tuple[str, str]]) -> int:
    """Publish the sends a tenant's window let in (:mod:`worker.state.windows`) to the
    send queue, :data:`SEND_BATCH` to a message; how many sends."""
    if sends:
        publish_tasks(app, BATCH_TASK, batch_calls(sends), queue=SEND_QUEUE)
    return len(sends)


def batch_calls(sends: Sequence[tuple[str, str]]) -> list[tuple[list[list[str]]]]:
    """The arguments of the ``heeros.export_batch`` messages that carry ``sends``."""
    return [
        ([[run, item] for run, item in sends[start : start + SEND_BATCH]],)
        for start in range(0, len(sends), SEND_BATCH)
    ]


def take_turn(task: Task[Any, Any], sends: Sequence[tuple[str, str]]) -> int:
    """The sends start: struck from their tenant's window, whose next sends are published
    (none for sends of no window). A failure only delays them: the recovery beat's
    top-up lets them in (:func:`worker.celery.dispatch.top_up`)."""
    runtime = runtime_of(task)
    try:
        let_in = Windows.for_store(runtime.store).take(
            sends, size=runtime.settings.dispatch_window, now=time.time()
        )
        return publish_window(task.app, let_in)
    except TransientError as error:
        log.info("%d sends started: their window's next wait for the top-up: %s", len(sends), error)
        return 0


def release(task: Task[Any, Any], sends: int | None = None) -> None:
    """Strike the message from the worker's lease (:mod:`worker.celery.recovery`): it ends
    here, acknowledged, or followed by its retry's own message. ``sends``: how many a
    ``heeros.export_batch`` message carried."""
    request = task.request
    if request.id is None:
        return
    runtime = runtime_of(task)
    retries = request.retries or 0
    deliveries = (
        [delivery_of(request.id, retries)]
        if sends is None
        else [delivery_of(request.id, retries, index) for index in range(sends)]
    )
    try:
        runtime.leases.release(runtime.worker_id, *deliveries)
    except TransientError as error:
        # Left in the lease: should the worker die, the item is looked at and skipped.
        log.info("task=%s: a finished send stays in the worker's lease: %s", request.id, error)


@dataclass(frozen=True)
class Later:
    """A send to try again in ``delay`` seconds, with ``failures`` so far; ``held_back``:
    the tenant's shared limits held it back (no failure)."""

    delay: float
    failures: int
    error: ExportError
    held_back: bool = False


def attempt(runtime: Runtime, run: str, item: str, failures: int) -> str | Later:
    """One try of a send: the pipeline's send, its outcome, or when to try again."""
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
        return Later(delay, failures, error, held_back=True)
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
        return Later(delay, failures + 1, error)
    except PermanentError as error:
        # A permanent error outside the pipeline's own handling (configuration).
        record = runtime.store.item(run, item)
        if record is not None:
            fail_item(runtime.store, record, error, metrics=runtime.metrics)
        return "failed"
    if outcome is Outcome.SENT:
        keep_trace(runtime.store, run, item)
    return outcome.value


def export_item(task: Task[Any, Any], run: str, item: str, failures: int) -> str:
    """The send task's work: :func:`attempt`, a later try as the task's retry."""
    outcome = attempt(runtime_of(task), run, item, failures)
    if isinstance(outcome, Later):
        raise task.retry(
            exc=outcome.error,
            countdown=outcome.delay,
            kwargs={"failures": outcome.failures},
            **retry_trace(),
        )
    return outcome


def queue_later(task: Task[Any, Any], sends: Sequence[tuple[str, str]], later: Later) -> list[str]:
    """Sends of a batch queued to be tried again after ``later.delay``: one held back by
    the limits with the rest of its batch, in one message; one that failed on its own,
    with its failures. The outcome of each (``retry``, or ``lost`` when the broker did not
    take the message: the sweep finds the item, as it finds any a message left)."""
    name: str = BATCH_TASK
    args: tuple[Any, ...] = ([[run, item] for run, item in sends],)
    kwargs: dict[str, int] | None = None
    if not later.held_back:
        ((run, item),) = sends
        name, args, kwargs = SEND_TASK, (run, item), {"failures": later.failures}
    try:
        task.app.send_task(
            name, args=args, kwargs=kwargs, countdown=later.delay, queue=SEND_QUEUE, **retry_trace()
        )
    except OperationalError as error:
        log.warning(
            "%d sends could not be queued again (the sweep will): %s: %s",
            len(sends),
            type(error).__name__,
            error,
        )
        return ["lost"] * len(sends)
    return ["retry"] * len(sends)


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
    place_held: bool = False,
) -> None:
    """Check one claimed poll; a failure is recorded or rescheduled, never raised.

    The check is a span in the trace ``traceparent`` names (the send's), linked to
    ``links`` (the poll task's span). ``place_held``: its batch holds the request's
    place in the tenant's limits (:func:`hold_places`).
    """
    with span(
        "check", traceparent=traceparent, links=links, attributes={RUN: run, ITEM: item}
    ) as current:
        try:
            outcome = check_record(
                runtime.store,
                held_resolve(runtime) if place_held else runtime.resolve,
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
    """Check claimed polls together: their items read in one round trip, their places in
    the tenants' limits held in one round trip per tenant, the status requests sent
    side by side on the process's poll threads."""
    if not claimed:
        return
    records = runtime.store.records(claimed)
    traceparents: list[str | None] = [None] * len(claimed)
    links: list[Link] = []
    if tracing_enabled():
        traceparents = runtime.store.traceparents(claimed)
        task = get_current_span().get_span_context()
        links = [Link(task)] if task.is_valid else []
    with ExitStack() as places:
        held = hold_places(runtime, claimed, records, places)
        checks = [
            runtime.poll_pool.submit(
                check_claimed,
                runtime,
                run,
                item,
                record,
                traceparent=traceparent,
                links=links,
                place_held=place is True,
            )
            for (run, item), record, traceparent, place in zip(
                claimed, records, traceparents, held, strict=True
            )
            if place is not False
        ]
        for check in checks:
            check.result()


def hold_places(
    runtime: Runtime,
    claimed: Sequence[tuple[str, str]],
    records: Sequence[ItemRecord | None],
    places: ExitStack,
) -> list[bool | None]:
    """Hold the places of a batch's status requests in their tenants' limits, a tenant
    at a time, until ``places`` closes. For each poll: True, its place is held; False,
    the limits hold it back (its poll is moved to when they would let it go); None, it
    asks for its own place as it goes (no request, no limits, or the limiter was not
    reached)."""
    held: list[bool | None] = [None] * len(claimed)
    by_tenant: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        if record is None or record.state is not State.SENT or record.heeros_id is None:
            continue
        try:
            # Read from the configuration: this thread makes no request, so needs no client.
            tenant = runtime.config.export(record.export).tenant
        except PermanentError:
            continue  # the check fails the item with the reason
        by_tenant.setdefault(tenant, []).append(index)
    now = time.time()
    for tenant, indexes in by_tenant.items():
        try:
            admitted = places.enter_context(runtime.limiter.permits(tenant, len(indexes)))
        except TransientError as error:
            log.info(
                "tenant=%s: %d polls ask for their places one by one: %s",
                tenant,
                len(indexes),
                error,
            )
            continue
        for order, index in enumerate(indexes):
            if order < admitted.count:
                held[index] = True
                continue
            held[index] = False
            run, item = claimed[index]
            later = now + max(admitted.wait, 0.05) + random.uniform(0.0, 0.25)
            with suppress(TransientError):  # else the claim's lease runs out: due again
                runtime.store.schedule_poll(run, item, later)
    return held


def held_resolve(runtime: Runtime) -> Resolve:
    """The runtime's :meth:`~worker.celery.runtime.Runtime.resolve`, its clients for
    requests whose places are held already."""

    def resolve(export_name: str) -> tuple[Target, Heeros]:
        target, client = runtime.resolve(export_name)
        if isinstance(client, LimitedHeeros):
            return target, client.with_places_held()
        return target, client

    return resolve


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
    "BATCH_TASK",
    "EXPRESS_QUEUE",
    "POLL_QUEUE",
    "POLL_TASK",
    "SEND_BATCH",
    "SEND_QUEUE",
    "SEND_TASK",
    "SWEEP_TASK",
    "Later",
    "attempt",
    "batch_calls",
    "check_batch",
    "check_claimed",
    "export_batch",
    "export_invoice",
    "export_item",
    "held_resolve",
    "hold_places",
    "keep_trace",
    "poll_due",
    "publish_window",
    "queue_later",
    "release",
    "retry_trace",
    "sweep_stale",
    "take_turn",
]
