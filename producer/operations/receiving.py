"""A streamed close: a period's run recorded and queued batch by batch as its invoices
arrive, in the memory of one batch whatever the period's size.

The run is recorded first, empty and *receiving*: the dashboard, ``status`` and
``GET /runs/{run}`` show it as still receiving, and it cannot be complete. Each batch
(:data:`~producer.operations.streams.BATCH` invoices) goes through the close's rules
(:func:`~producer.operations.corrections.admit`), then its items are recorded (the
run's total grows first, in the same round trip) and only then queued, so no figure
ever runs ahead of the total. When the stream ends the total is fixed.

A stream that breaks off leaves the run with what arrived: its total is fixed there and
the run says how the stream ended; the missing invoices can be exported as late ones
(``heeros-export export --invoices``, ``POST /exports``).

An invoice number met twice in one stream is exported once: its later copies fail
alone, each recorded under the number and its occurrence (``100001#2``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field

from producer.operations.corrections import admit
from producer.operations.intake import Intake
from producer.operations.runinvoices import KeptInvoice, Rejected, kept
from producer.operations.runs import (
    CLAIM_HOLD_S,
    RunStarted,
    item_tenants,
    period_run,
    plan_items,
    queue_sends,
    record_rejection,
    send_queue,
    without_export,
)
from worker.celery.app import CeleryApp
from worker.celery.tasks import SEND_QUEUE
from worker.config import ExportConfig
from worker.documents.names import check_period
from worker.errors import InvoiceError, PermanentError, TransientError
from worker.state.copies import KeptCopies
from worker.state.records import RunRecord
from worker.state.store import StatusStore

log = logging.getLogger(__name__)

KEPT_REJECTIONS = 100
"""Refused invoices a streamed close keeps to answer with (all are recorded in the run)."""


@dataclass
class ReceivingRun:
    """A run whose invoices arrive in batches (:meth:`add`) until :meth:`finish`."""

    app: CeleryApp
    store: StatusStore
    config: ExportConfig
    period: str
    run: str
    created: float = field(default_factory=time.time)
    exports: list[str] = field(default_factory=list)
    total: int = 0
    queued: int = 0
    refused: int = 0
    per_export: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    """The first :data:`KEPT_REJECTIONS` refused invoices."""
    _seen: dict[str, int] = field(default_factory=dict)
    _pending: Intake | None = None
    _flushed: bool = False

    def open(self, label: str) -> None:
        """Record the run, empty and receiving."""
        record = RunRecord(
            run=self.run,
            period=self.period,
            total=0,
            created=self.created,
            exports=[],
            label=label,
            extra={"invoices": "0"},
        )
        self.store.open_run(record)

    def add(self, batch: Intake) -> None:
        """A batch of the stream. The first is held back until a second arrives or the
        stream ends: a stream of one batch is a small run, on the express queue."""
        if not self._flushed and self._pending is None:
            self._pending = batch
            return
        if self._pending is not None:
            self._record(self._pending, SEND_QUEUE)
            self._pending = None
        self._record(batch, SEND_QUEUE)
        self._flushed = True

    def finish(self, *, broken: str | None = None) -> RunStarted:
        """The stream has ended (``broken``: how it broke off): the total is fixed."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._record(pending, send_queue(len(pending.invoices)))
        fields: dict[str, str] = {}
        if broken is not None:
            self.warnings.append(
                f"the stream of invoices broke off after {self.total:,} of them: {broken}; "
                "export the missing invoices as late ones (heeros-export export --invoices)"
            )
        if self.warnings:
            fields["warnings"] = json.dumps(self.warnings)
        self.store.end_receiving(self.run, fields)
        log.info(
            "run=%s period=%s received: %d items queued, %d refused",
            self.run,
            self.period,
            self.queued,
            self.refused,
        )
        return RunStarted(
            run=self.run,
            total=self.total,
            queued=self.queued,
            rejected=self.refused,
            per_export=dict(self.per_export),
            warnings=list(self.warnings),
            not_sent=list(self.rejected),
        )

    def _record(self, batch: Intake, queue: str) -> None:
        fresh, refused = self._first_copies(batch)
        admission = admit(self.store, kept(fresh), period=self.period)
        self.store.add_period_invoices(self.period, (i.number for i in admission.invoices))
        exports, items, warnings = plan_items(self.config, admission.invoices, self.exports)
        refused += admission.rejected
        refused += without_export(self.config, admission.invoices)
        copies: list[KeptInvoice] = admission.invoices
        self.store.add_run_items(
            self.run,
            exports,
            items,
            {invoice.number: invoice.copy for invoice in copies},
            versions={invoice.number: invoice.version for invoice in copies},
            invoices=batch.count,
            refused=len(refused),
        )
        KeptCopies.for_store(self.store).record_runs(
            self.run, self.created, [invoice.number for invoice in copies]
        )
        for rejection in refused:
            record_rejection(self.store, self.run, rejection)
        queue_sends(
            self.app,
            self.run,
            [item for item, _, _ in items],
            queue=queue,
            windows=(self.store, item_tenants(self.config, exports, items)),
        )
        self.total += len(items) + len(refused)
        self.queued += len(items)
        self.refused += len(refused)
        for _, _, index in items:
            name = exports[index]
            self.per_export[name] = self.per_export.get(name, 0) + 1
        for warning in warnings:
            if warning not in self.warnings:
                self.warnings.append(warning)
                log.warning("run=%s %s", self.run, warning)
        room = KEPT_REJECTIONS - len(self.rejected)
        self.rejected += refused[: max(0, room)]

    def _first_copies(self, batch: Intake) -> tuple[list[KeptInvoice], list[Rejected]]:
        """The batch's invoices whose number the stream has not given before, and the
        refused: those refused at intake and later copies of a number."""
        fresh: list[KeptInvoice] = []
        refused: list[Rejected] = []
        for rejection in batch.rejected:
            refused.append(self._again(rejection.number, rejection.error))
        for invoice in kept(batch.invoices):
            if invoice.number in self._seen:
                message = (
                    f"invoice {invoice.number} appears more than once in the period: "
                    "only its first copy is exported"
                )
                refused.append(self._again(invoice.number, InvoiceError(message)))
            else:
                self._seen[invoice.number] = 1
                fresh.append(invoice)
        return fresh, refused

    def _again(self, number: str, error: PermanentError) -> Rejected:
        """``number`` refused, under a name of its own when the stream gave it before."""
        times = self._seen.get(number, 0) + 1
        self._seen[number] = times
        label = number if times == 1 else f"{number}#{times}"
        return Rejected(label, error)


def close_streamed(
    app: CeleryApp,
    store: StatusStore,
    config: ExportConfig,
    batches: Iterable[Intake],
    *,
    period: str,
) -> RunStarted:
    """Close ``period`` with the invoices of a stream, batch by batch; closing it again
    answers with the run it has (the stream is then not read)."""
    check_period(period)
    run = store.next_run_id(period)
    if not store.claim_period(period, run, hold_s=CLAIM_HOLD_S):
        return period_run(store, period, run)
    stream = iter(batches)
    try:
        first = next(stream, None)
        if first is None:
            raise InvoiceError("the stream holds no invoice to close the period with")
        receiving = ReceivingRun(app, store, config, period=period, run=run)
        receiving.open(f"close {period}")
    except BaseException:
        # No run recorded: the period stays open for the next close.
        with suppress(TransientError):  # else the claim lapses after CLAIM_HOLD_S
            store.release_period(period, run)
        raise
    store.keep_period(period, run)
    broken: str | None = None
    try:
        receiving.add(first)
        for batch in stream:
            receiving.add(batch)
    except InvoiceError as error:
        broken = str(error)
    except BaseException as error:
        try:
            receiving.finish(broken=f"the close stopped ({type(error).__name__})")
        except TransientError:
            log.warning("run=%s: its total could not be fixed (Redis is away)", run)
        raise
    return receiving.finish(broken=broken)


__all__ = ["KEPT_REJECTIONS", "ReceivingRun", "close_streamed"]
