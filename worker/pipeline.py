"""The export of one invoice, as plain functions of a store and a Heeros client.

:func:`send_invoice` takes an item from queued to sent: it builds the Finvoice
document, records ``sending`` *before* the request leaves, sends with an
idempotency key that does not depend on the run, and records the Heeros id
with the first status poll. :func:`check_invoice` polls one sent item and ends
it: exported, incomplete, failed, or unconfirmed when the deadline passes.

Transient errors (Heeros or Redis unreachable, 5xx, 429) are raised to the
caller, which retries later; every permanent error ends the item as failed with
the message a user sees. Nothing here sleeps or knows of Celery.

The steps are spans of the invoice's trace when tracing is on (``transform``,
``heeros.find``, ``heeros.send``), and the final state an event (see
:mod:`worker.tracing`); while it is off they cost nothing.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from worker.config.starttext import SendOptions
from worker.documents.finvoice import render_document
from worker.documents.keptcopy import invoice_source
from worker.errors import (
    ConfirmationTimeout,
    ExportError,
    HeerosRefusedError,
    InvoiceError,
    InvoiceIncomplete,
    PermanentError,
    Throttled,
    TransientError,
)
from worker.heeros.remote import Heeros, RemoteState, RemoteStatus
from worker.state.keys import State, split_item
from worker.state.metrics import Metrics
from worker.state.store import ItemRecord, StatusStore
from worker.tracing import final_state, span

log = logging.getLogger(__name__)


class Target(Protocol):
    """What the pipeline needs of an export (``worker.config.exports.Export`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def office_code(self) -> str: ...
    @property
    def customer_code(self) -> str: ...
    @property
    def encoding(self) -> str: ...
    @property
    def transform(self) -> str: ...
    @property
    def options(self) -> SendOptions: ...


Resolve = Callable[[str], tuple[Target, Heeros]]
"""Gives the export of that name and a Heeros client for its tenant."""


@dataclass(frozen=True)
class Timing:
    """When to poll and when to give up waiting for a confirmation."""

    poll_first_s: float = 2.0
    poll_max_s: float = 30.0
    confirm_deadline_s: float = 600.0

    @property
    def grace_s(self) -> float:
        """How long past the deadline a status that could not be asked is asked again."""
        return max(60.0, 4 * self.poll_max_s)

    def next_poll(self, polls: int) -> float:
        """The wait before poll number ``polls + 1``: doubling from the first, capped."""
        return float(min(self.poll_first_s * (2 ** min(polls, 16)), self.poll_max_s))


class Outcome(StrEnum):
    """What a pipeline step did."""

    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    EXPORTED = "exported"
    INCOMPLETE = "incomplete"
    UNCONFIRMED = "unconfirmed"
    PENDING = "pending"


def idempotency_key(target: Target, invoice_number: str, version: str | None = None) -> str:
    """The same for every run that sends this version of the invoice to this Heeros tenant:
    a correction (a new version of the kept copy) is never answered as the one it corrects."""
    identity = f"{target.office_code}\x1f{target.customer_code}\x1f{invoice_number}"
    if version:
        identity += f"\x1f{version}"
    return hashlib.sha256(identity.encode()).hexdigest()[:40]


def fail_item(
    store: StatusStore,
    record: ItemRecord,
    error: ExportError,
    *,
    now: float | None = None,
    metrics: Metrics | None = None,
) -> bool:
    """End an item as failed with the message a user sees."""
    message = error.user_message(record.number)
    log.warning(
        "run=%s invoice=%s export=%s failed: %s",
        record.run,
        record.number,
        record.export,
        message,
    )
    _, export_index = split_item(record.item)
    ended = store.transition(
        record.run,
        record.item,
        State.FAILED,
        export_index=export_index,
        drop_poll=True,
        kind=error.kind,
        message=message,
        updated=f"{now or time.time():.3f}",
    )
    if ended:
        final_state(State.FAILED.value)
    if metrics is not None:
        if error.code is not None:
            metrics.count_error(error.code)
        if ended:
            metrics.count_final(record.export, State.FAILED.value)
    return ended


def send_invoice(
    store: StatusStore,
    resolve: Resolve,
    run: str,
    item: str,
    *,
    timing: Timing,
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
) -> Outcome:
    """Send one queued item to Heeros; transient errors are raised for a later retry."""
    record, blob = store.item_and_source(run, item)
    if record is None:
        log.error("run=%s item=%s is not in the store; nothing to send", run, item)
        return Outcome.SKIPPED
    if record.state.final:
        return Outcome.SKIPPED
    _, export_index = split_item(item)
    if record.state is State.SENT:
        # Delivered again after the send was recorded: make sure it is being polled.
        store.schedule_poll(run, item, clock() + timing.poll_first_s)
        return Outcome.SKIPPED
    try:
        target, client = resolve(record.export)
        if blob is None:
            raise InvoiceError(
                f"invoice {record.number}: no copy is kept to export",
                invoice_number=record.number,
            )
        source = invoice_source(blob, number=record.number)
        with span("transform"):
            document = render_document(
                source, record.number, target.transform, encoding=target.encoding
            )
    except PermanentError as error:
        fail_item(store, record, error, metrics=metrics)
        return Outcome.FAILED
    heeros_id: str | None = None
    if record.state is State.SENDING and not record.held:
        # An earlier attempt may have reached Heeros with its answer lost: ask first.
        with span("heeros.find"):
            found = client.find(record.number)
        if found is not None:
            heeros_id = found.invoice_id
            log.info("run=%s invoice=%s already in Heeros as %s", run, record.number, heeros_id)
    store.transition(run, item, State.SENDING, export_index=export_index, held="")
    if heeros_id is None:
        began = time.perf_counter()
        try:
            with span("heeros.send"):
                heeros_id = client.send(
                    record.number,
                    document,
                    target.options,
                    idempotency_key(target, record.number, record.version),
                    encoding=target.encoding,
                )
        except Throttled:
            # Held back before any request left: the next attempt need not ask Heeros first.
            store.set_item_fields(run, item, held="1")
            raise
        except PermanentError as error:
            fail_item(store, record, error, metrics=metrics)
            return Outcome.FAILED
        if metrics is not None:
            metrics.observe_send(record.export, time.perf_counter() - began)
    now = clock()
    store.transition(
        run,
        item,
        State.SENT,
        export_index=export_index,
        heeros_id=heeros_id,
        poll=now + timing.poll_first_s,
        sent=f"{now:.3f}",
        deadline=f"{now + timing.confirm_deadline_s:.3f}",
    )
    log.info("run=%s invoice=%s export=%s sent as %s", run, record.number, target.name, heeros_id)
    return Outcome.SENT


def check_invoice(
    store: StatusStore,
    resolve: Resolve,
    run: str,
    item: str,
    *,
    timing: Timing,
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
) -> Outcome:
    """Poll one sent item's status in Heeros and end it when Heeros has decided."""
    return check_record(
        store,
        resolve,
        run,
        item,
        store.item(run, item),
        timing=timing,
        clock=clock,
        metrics=metrics,
    )


def check_record(
    store: StatusStore,
    resolve: Resolve,
    run: str,
    item: str,
    record: ItemRecord | None,
    *,
    timing: Timing,
    clock: Callable[[], float] = time.time,
    metrics: Metrics | None = None,
) -> Outcome:
    """:func:`check_invoice` with the item's record already read (None: it is gone)."""
    if record is None or record.state is not State.SENT or record.heeros_id is None:
        store.drop_poll(run, item)
        return Outcome.SKIPPED
    _, export_index = split_item(item)
    now = clock()
    deadline = record.deadline or (now + timing.confirm_deadline_s)
    try:
        _, client = resolve(record.export)
        status = client.status(record.heeros_id)
    except TransientError:
        # Heeros could not be asked: that is no answer, so ask again, a while past the deadline.
        if now >= deadline + timing.grace_s:
            return _unconfirmed(store, record, export_index, metrics)
        store.schedule_poll(run, item, now + timing.next_poll(record.polls))
        raise
    except PermanentError as error:
        fail_item(store, record, error, metrics=metrics)
        return Outcome.FAILED
    if status.state is RemoteState.CONFIRMED:
        _end_with_answer(
            store, record, State.EXPORTED, status, now=now, timing=timing, metrics=metrics
        )
        log.info("run=%s invoice=%s exported (%s)", run, record.number, status.heeros_status)
        return Outcome.EXPORTED
    if status.state is RemoteState.INCOMPLETE:
        message = InvoiceIncomplete(record.heeros_id).user_message(record.number)
        _end_with_answer(
            store,
            record,
            State.INCOMPLETE,
            status,
            now=now,
            timing=timing,
            metrics=metrics,
            message=message,
        )
        return Outcome.INCOMPLETE
    if status.state is RemoteState.ERROR:
        fail_item(
            store,
            record,
            HeerosRefusedError(
                status.error_code or "ERROR", status.error_message or "processing failed"
            ),
            metrics=metrics,
        )
        return Outcome.FAILED
    if now >= deadline:
        return _unconfirmed(store, record, export_index, metrics)
    polls = record.polls + 1
    store.transition(
        run,
        item,
        State.SENT,
        export_index=export_index,
        poll=min(now + timing.next_poll(polls), deadline),
        polls=str(polls),
    )
    return Outcome.PENDING


def _end_with_answer(
    store: StatusStore,
    record: ItemRecord,
    state: State,
    status: RemoteStatus,
    *,
    now: float,
    timing: Timing,
    metrics: Metrics | None,
    message: str | None = None,
) -> None:
    """End an item in the final state Heeros's answer gives it, counted once."""
    _, export_index = split_item(record.item)
    if message is None:
        ended = store.transition(
            record.run,
            record.item,
            state,
            export_index=export_index,
            drop_poll=True,
            heeros_status=status.heeros_status,
        )
    else:
        ended = store.transition(
            record.run,
            record.item,
            state,
            export_index=export_index,
            drop_poll=True,
            heeros_status=status.heeros_status,
            message=message,
        )
    if ended:
        final_state(state.value)
    if ended and metrics is not None:
        metrics.count_final(record.export, state.value)
        metrics.observe_confirmation(record.export, now - _sent_at(record, timing))


def _sent_at(record: ItemRecord, timing: Timing) -> float:
    deadline = record.deadline or record.updated + timing.confirm_deadline_s
    return deadline - timing.confirm_deadline_s


def _unconfirmed(
    store: StatusStore, record: ItemRecord, export_index: int, metrics: Metrics | None = None
) -> Outcome:
    error = ConfirmationTimeout(record.heeros_id or "")
    ended = store.transition(
        record.run,
        record.item,
        State.UNCONFIRMED,
        export_index=export_index,
        drop_poll=True,
        message=error.user_message(record.number),
    )
    if ended:
        final_state(State.UNCONFIRMED.value)
    if ended and metrics is not None:
        metrics.count_final(record.export, State.UNCONFIRMED.value)
    log.warning("run=%s invoice=%s not confirmed before the deadline", record.run, record.number)
    return Outcome.UNCONFIRMED


__all__ = [
    "Heeros",
    "Outcome",
    "Resolve",
    "Target",
    "Timing",
    "check_invoice",
    "fail_item",
    "idempotency_key",
    "send_invoice",
]
