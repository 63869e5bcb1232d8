"""Export runs: closing a period (or choosing invoices) records a run and queues its tasks.

The run's total is written before any task is queued, so no figure can ever
run ahead of it. Tasks are published in batches (one Redis round trip per
batch), so a period of ten thousand invoices is queued in a second or two.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from producer.operations.corrections import admit
from producer.operations.runinvoices import KeptInvoice, Rejected, RunInvoice, kept
from worker.celery.app import CeleryApp
from worker.celery.dispatch import queue_windowed
from worker.celery.publisher import publish_tasks
from worker.celery.tasks import EXPRESS_QUEUE, SEND_QUEUE, SEND_TASK
from worker.config import ExportConfig
from worker.documents.keptcopy import decompress_invoice
from worker.documents.names import check_period
from worker.errors import InvoiceError, Kind, NoExport, TransientError
from worker.state.copies import KeptCopies
from worker.state.groups import record_group_key
from worker.state.keys import State, item_id, split_item
from worker.state.store import RunRecord, StatusStore
from worker.tracing import invoice_traces

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunStarted:
    """What starting a run did."""

    run: str
    total: int
    queued: int
    rejected: int
    existing: bool = False
    per_export: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    not_exported: list[Rejected] = field(default_factory=list)
    """Invoices whose group has no Heeros export: recorded as failed, with the reason."""
    not_sent: list[Rejected] = field(default_factory=list)
    """Invoices the rules of :mod:`producer.operations.corrections` refused, with the reason."""


def plan_items(
    config: ExportConfig, invoices: Sequence[RunInvoice], exports: list[str] | None = None
) -> tuple[list[str], list[tuple[str, str, int]], list[str]]:
    """The run's exports, its items (id, number, export index) and warnings.

    ``exports`` are those a run already has (a streamed close's earlier batches): their
    indexes stay, and exports first met here are added to that very list."""
    exports = [] if exports is None else exports
    index_of = {name: index for index, name in enumerate(exports)}
    items: list[tuple[str, str, int]] = []
    warnings: list[str] = []
    without: set[str] = set()
    for invoice in invoices:
        customer = (
            invoice.customer_number
            if isinstance(invoice, KeptInvoice)
            else invoice.customer.customer_number
        )
        targets = config.exports_for(customer)
        if not any(target.is_heeros for target in targets):
            without.add(customer)
        for target in targets:
            if target.name not in index_of:
                index_of[target.name] = len(exports)
                exports.append(target.name)
            index = index_of[target.name]
            items.append((item_id(invoice.number, index), invoice.number, index))
    for customer in sorted(without):
        group = config.group_for(customer).name
        warnings.append(
            f"customer {customer}: group {group!r} has no Heeros export, so its invoices "
            "do not reach Heeros (Opter's advice: add the Heeros export to every group)"
        )
    return exports, items, warnings


def start_run(
    app: CeleryApp,
    store: StatusStore,
    config: ExportConfig,
    invoices: Sequence[RunInvoice],
    *,
    period: str,
    rejected: Iterable[Rejected] = (),
    label: str = "",
    run: str | None = None,
) -> RunStarted:
    """Record a run of ``invoices`` and queue one task per invoice and export."""
    check_period(period)
    refused = list(rejected)
    _refuse_repeats(invoices)
    exports, items, warnings = plan_items(config, invoices)
    nowhere = without_export(config, invoices)
    refused += nowhere
    if refused and not exports:
        exports.append(config.exports_for("")[0].name if config.exports else "")
    run = run or store.next_run_id(period)
    total = len(items) + len(refused)
    copies = kept(invoices)
    payloads = {invoice.number: invoice.copy for invoice in copies}
    created = time.time()
    store.create_run(
        RunRecord(
            run=run,
            period=period,
            total=total,
            created=created,
            exports=exports,
            label=label,
            extra={
                "invoices": str(len(invoices) + len(rejected_numbers(refused, invoices))),
                **({"warnings": json.dumps(warnings)} if warnings else {}),
            },
        ),
        items,
        payloads,
        versions={invoice.number: invoice.version for invoice in copies},
    )
    KeptCopies.for_store(store).record_runs(run, created, list(payloads))
    for rejection in refused:
        record_rejection(store, run, rejection)
    tenants = item_tenants(config, exports, items)
    queue_sends(app, run, [item for item, _, _ in items], windows=(store, tenants))
    per_export: dict[str, int] = {}
    for _, _, index in items:
        per_export[exports[index]] = per_export.get(exports[index], 0) + 1
    for warning in warnings:
        log.warning("run=%s %s", run, warning)
    log.info("run=%s period=%s queued %d items, %d rejected", run, period, len(items), len(refused))
    return RunStarted(
        run=run,
        total=total,
        queued=len(items),
        rejected=len(refused),
        per_export=per_export,
        warnings=warnings,
        not_exported=nowhere,
    )


def without_export(config: ExportConfig, invoices: Sequence[RunInvoice]) -> list[Rejected]:
    """The invoices whose group has no Heeros export: not exported, and said so per invoice."""
    refused = []
    for invoice in invoices:
        customer = (
            invoice.customer_number
            if isinstance(invoice, KeptInvoice)
            else invoice.customer.customer_number
        )
        if not any(target.is_heeros for target in config.exports_for(customer)):
            group = config.group_for(customer).name
            refused.append(Rejected(invoice.number, NoExport(invoice.number, group)))
    return refused


def rejected_numbers(refused: Sequence[Rejected], invoices: Sequence[RunInvoice]) -> set[str]:
    """The refused invoices that are not among ``invoices`` (refused at intake)."""
    accepted = {invoice.number for invoice in invoices}
    return {rejection.number for rejection in refused} - accepted


def _refuse_repeats(invoices: Sequence[RunInvoice]) -> None:
    numbers = [invoice.number for invoice in invoices]
    if len(set(numbers)) != len(numbers):
        seen: set[str] = set()
        twice = sorted({n for n in numbers if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
        raise InvoiceError(f"invoice numbers appear twice in the period: {', '.join(twice)}")


NO_EXPORT_INDEX = -1
"""Where an invoice of no Heeros export is counted: under no export of the run."""


def record_rejection(store: StatusStore, run: str, rejection: Rejected) -> None:
    item = item_id(rejection.number, 0)
    nowhere = rejection.error.kind is Kind.NO_EXPORT
    store.transition(
        run,
        item,
        State.FAILED,
        export_index=NO_EXPORT_INDEX if nowhere else 0,
        kind=rejection.error.kind,
        number=rejection.number,
        message=rejection.error.user_message(rejection.number),
    )


EXPRESS_MAX_ITEMS = 1000
"""The most sends one batch may have to go to the express queue."""


def send_queue(items: int) -> str:
    """The queue a batch of ``items`` sends goes to."""
    return EXPRESS_QUEUE if items <= EXPRESS_MAX_ITEMS else SEND_QUEUE


def item_tenants(
    config: ExportConfig, exports: Sequence[str], items: Sequence[tuple[str, str, int]]
) -> dict[str, list[str]]:
    """The items of a run by the Heeros tenant of their export (``OFFICE-CUSTOMER``)."""
    tenant_of: dict[int, str] = {}
    found: dict[str, list[str]] = {}
    for item, _, index in items:
        if index not in tenant_of:
            tenant_of[index] = config.export(exports[index]).tenant
        found.setdefault(tenant_of[index], []).append(item)
    return found


def queue_sends(
    app: CeleryApp,
    run: str,
    items: Sequence[str],
    *,
    span: str = "close",
    queue: str | None = None,
    windows: tuple[StatusStore, Mapping[str, Sequence[str]]] | None = None,
) -> None:
    """One send task per item, published in batches on one connection (see
    :mod:`worker.celery.publisher`): a period is queued several times faster than by
    an ``apply_async`` loop, with the very messages that loop would send.

    A batch of at most :data:`EXPRESS_MAX_ITEMS` (a small period, an export of a few
    invoices, most re-queues) goes to the express queue, which workers take from in
    turn with the send queue: it never waits behind a big period's backlog. ``queue``
    chooses the queue instead (a streamed close's batches: the send queue).

    A bigger batch, given ``windows`` (the store and the items per Heeros tenant), waits
    in its tenants' backlogs in the store and reaches the send queue a window at a time
    (:mod:`worker.state.windows`), so that the tenants' runs take turns.

    When tracing is on, each item starts a trace of its own with a ``span`` span
    (``close``, or ``requeue``), which its message carries to the worker."""
    if not items:
        return  # nothing to queue: the broker is not even asked
    chosen = queue or send_queue(len(items))
    if windows is not None and chosen == SEND_QUEUE:
        store, tenants = windows
        runtime = app.heeros_runtime  # type: ignore[attr-defined]
        queue_windowed(app, store, runtime.settings, run, tenants, now=time.time())
        return
    with invoice_traces(span, run) as traces:
        publish_tasks(
            app,
            SEND_TASK,
            ((run, item) for item in items),
            queue=chosen,
            traces=None if traces is None else traces.contexts(items),
        )


CLAIM_HOLD_S = 600.0
"""How long a close's claim of its period holds before its run is recorded: a close that
dies in between frees the period after that long, instead of leaving it with no run."""


def period_run(store: StatusStore, period: str, run: str) -> RunStarted:
    """The run a period closed before has (``run``: the one the close would have made):
    what closing it again answers with."""
    existing = store.period_run(period) or run
    record = store.run_record(existing)
    total = record.total if record else 0
    return RunStarted(run=existing, total=total, queued=0, rejected=0, existing=True)


def close_period(
    app: CeleryApp,
    store: StatusStore,
    config: ExportConfig,
    invoices: Sequence[RunInvoice],
    *,
    period: str,
    rejected: Iterable[Rejected] = (),
) -> RunStarted:
    """Export a closed period once: closing it again answers with the run it already has."""
    check_period(period)  # before anything is kept: no key is made of another name
    _refuse_repeats(invoices)  # before the claim: a refused close must leave the period open
    run = store.next_run_id(period)
    if not store.claim_period(period, run, hold_s=CLAIM_HOLD_S):
        return period_run(store, period, run)
    try:
        # A number another period holds, or one Heeros holds already, fails alone.
        admission = admit(store, kept(invoices), period=period)
        store.add_period_invoices(period, (invoice.number for invoice in admission.invoices))
        started = start_run(
            app,
            store,
            config,
            admission.invoices,
            period=period,
            rejected=[*rejected, *admission.rejected],
            label=f"close {period}",
            run=run,
        )
    except BaseException:
        # A run recorded keeps the period (the sweep queues whatever it could not publish);
        # with no run recorded, the period stays open for the next close.
        try:
            recorded = store.run_record(run) is not None
            (store.keep_period if recorded else store.release_period)(period, run)
        except TransientError:
            pass  # Redis is away: the claim lapses by itself after CLAIM_HOLD_S
        raise
    store.keep_period(period, run)
    return replace(started, not_sent=admission.rejected)


def export_again(
    app: CeleryApp,
    store: StatusStore,
    config: ExportConfig,
    numbers: Sequence[str],
    *,
    period: str,
) -> RunStarted:
    """A new run of invoices already known from closed periods, from their kept copies.

    Heeros sees the same idempotency key as before, so an invoice it already has
    is not created twice: the run records it with the id Heeros names.
    """
    invoices: list[KeptInvoice] = []
    refused: list[Rejected] = []
    copies = KeptCopies.for_store(store)
    for number in dict.fromkeys(numbers):
        try:
            invoices.append(_current_copy(copies, number))
        except InvoiceError as error:
            refused.append(Rejected(number=number, error=error))
    return start_run(
        app,
        store,
        config,
        invoices,
        period=period,
        rejected=refused,
        label="export "
        + " ".join(list(dict.fromkeys(numbers))[:5])
        + (" ..." if len(numbers) > 5 else ""),
    )


def _current_copy(copies: KeptCopies, number: str) -> KeptInvoice:
    # The copy as it is kept, not the model written again: its version is the one kept.
    blob = copies.current(number)
    if blob is None:
        raise InvoiceError(f"invoice {number}: no copy is kept to export", invoice_number=number)
    customer = decompress_invoice(blob, number=number).customer.customer_number
    return KeptInvoice(number, customer, blob)


@dataclass(frozen=True)
class Requeued:
    """What a re-queue did."""

    run: str
    failed: int
    unconfirmed: int

    @property
    def total(self) -> int:
        return self.failed + self.unconfirmed


def requeue_run(
    app: CeleryApp, store: StatusStore, run: str, *, only: str | None = None
) -> Requeued:
    """Queue a run's failed and unconfirmed invoices again (only those).

    An unconfirmed invoice, and a failed one that had reached the sending step,
    goes back as ``sending``: its task asks Heeros first (``find``) and only sends
    when Heeros does not have it, so nothing is sent twice. With ``only``, the key
    of a failure group (:func:`worker.state.groups.record_group_key`), just the
    invoices of that group go, with the same guarantees.
    """
    counts = {State.FAILED: 0, State.UNCONFIRMED: 0}
    for state in (State.FAILED, State.UNCONFIRMED):
        members = store.members(run, state)
        again: list[str] = []
        for record in store.items(run, members):
            if record.kind in (Kind.INVOICE, Kind.NO_EXPORT):
                continue  # refused at intake: only the TMS can send it again, corrected
            if only is not None and record_group_key(record) != only:
                continue
            _, export_index = split_item(record.item)
            reached = state is State.UNCONFIRMED or record.attempts > 0
            target = State.SENDING if reached else State.QUEUED
            if store.transition(
                run,
                record.item,
                target,
                export_index=export_index,
                only_from=state,  # a concurrent re-queue that moved it first queues it
                message="",
                requeued="1",
            ):
                again.append(record.item)
        queue_sends(app, run, again, span="requeue")
        counts[state] = len(again)
    log.info(
        "run=%s re-queued %d failed and %d unconfirmed invoices%s",
        run,
        counts[State.FAILED],
        counts[State.UNCONFIRMED],
        f" of group {only}" if only is not None else "",
    )
    return Requeued(run=run, failed=counts[State.FAILED], unconfirmed=counts[State.UNCONFIRMED])


__all__ = [
    "KeptInvoice",
    "Rejected",
    "Requeued",
    "RunInvoice",
    "RunStarted",
    "close_period",
    "export_again",
    "item_tenants",
    "kept",
    "period_run",
    "plan_items",
    "queue_sends",
    "record_rejection",
    "requeue_run",
    "send_queue",
    "start_run",
    "without_export",
]
