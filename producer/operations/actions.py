"""The export triggers behind the HTTP API: close a period, export again, re-queue, read runs.

:class:`Operations` does what each route asks, over the Celery app, the status
store and the export configuration, and answers with the models below (which
are also the API's OpenAPI schemas). What cannot be done raises :class:`Refused`
with the status and a reason that names the invoice and the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from producer.operations.correctionruns import export_corrected
from producer.operations.intake import Intake, read_opter_xml
from producer.operations.preview import PreviewResult, preview_run
from producer.operations.receiving import close_streamed
from producer.operations.requests import (
    LISTED,
    MAX_INVOICES,
    SHOWN,
    Refused,
    body_intake,
    checked_intake,
    listing,
    rejections,
    stream_intake,
)
from producer.operations.runs import (
    KeptInvoice,
    Rejected,
    RunInvoice,
    RunStarted,
    close_period,
    export_again,
    kept,
    requeue_run,
)
from producer.operations.views import (
    FailureGroupsView,
    InvoicePage,
    InvoiceView,
    RequeueAccepted,
    RunAccepted,
    RunView,
)
from worker.celery.app import CeleryApp
from worker.config import ExportConfig
from worker.errors import InvoiceError
from worker.state.aggregator import (
    RunSummary,
    failure_groups,
    items_in_state,
    recent_runs,
    summarize,
)
from worker.state.keys import State
from worker.state.store import StatusStore

log = logging.getLogger(__name__)


def run_warnings(extra: dict[str, str]) -> list[str]:
    """The warnings kept with a run (customers whose group has no Heeros export)."""
    try:
        found = json.loads(extra.get("warnings") or "[]")
    except ValueError:
        return []
    return [str(w) for w in found] if isinstance(found, list) else []


class Operations:
    """What the routes do, over a Celery app, the status store and the export configuration."""

    def __init__(self, app: CeleryApp, store: StatusStore, config: ExportConfig) -> None:
        self.app = app
        self.store = store
        self.config = config

    def close(
        self, period: str, intake: Intake, *, preview: bool = False, out_dir: Path | None = None
    ) -> RunAccepted:
        """Close ``period`` with its invoices once; a preview builds them and closes nothing."""
        checked_intake(intake)
        if preview:
            return self._previewed(period, intake.invoices, intake.rejected, out_dir)
        started = close_period(
            self.app,
            self.store,
            self.config,
            intake.invoices,
            period=period,
            rejected=intake.rejected,
        )
        if started.existing:
            log.info("run=%s period=%s closed before: answering with its run", started.run, period)
            return self._existing(started, period)
        log.info("run=%s period=%s closed: %d queued", started.run, period, started.queued)
        return self._accepted(started, period, intake.rejected)

    def close_stream(
        self,
        period: str,
        batches: Iterable[Intake],
        *,
        preview: bool = False,
        out_dir: Path | None = None,
    ) -> RunAccepted:
        """Close ``period`` with a stream's invoices, recorded and queued a batch at a time
        (:mod:`producer.operations.receiving`). A preview builds them all at once: at
        most :data:`MAX_INVOICES`."""
        if preview:
            whole = Intake()
            for batch in batches:
                whole.invoices += batch.invoices
                whole.rejected += batch.rejected
                if whole.count > MAX_INVOICES:
                    raise Refused(
                        413,
                        f"more than {MAX_INVOICES:,} invoices in one preview: preview a part "
                        "of the period",
                    )
            return self.close(period, whole, preview=True, out_dir=out_dir)
        try:
            started = close_streamed(self.app, self.store, self.config, batches, period=period)
        except InvoiceError as error:
            raise Refused(422, str(error)) from None
        if started.existing:
            log.info("run=%s period=%s closed before: answering with its run", started.run, period)
            return self._existing(started, period)
        log.info("run=%s period=%s closed: %d queued", started.run, period, started.queued)
        return self._accepted(started, period, [])

    def export(
        self,
        numbers: Sequence[str] | None = None,
        *,
        period: str | None = None,
        preview: bool = False,
        out_dir: Path | None = None,
    ) -> RunAccepted:
        """A new run of invoices of closed periods: by number, or all of ``period``."""
        if (numbers is None) == (period is None):
            raise Refused(
                422,
                "give either 'invoices' (invoice numbers of closed periods) or 'period' "
                "(a closed period), one of the two",
            )
        if period is not None:
            chosen = self.store.period_invoices(period)
            if not chosen:
                raise Refused(422, f"period: {period} has no invoices: it was never closed")
        else:
            chosen = list(dict.fromkeys(numbers or []))
            if not chosen:
                raise Refused(422, "invoices: no invoice number given")
            unknown = self._unknown(chosen)
            if unknown:
                raise Refused(
                    422,
                    f"invoices: no copy is kept of {listing(unknown)}: only invoices of a "
                    "closed period can be exported again",
                )
            period = self._period_of(chosen[0])
        if preview:
            invoices: list[RunInvoice] = []
            refused: list[Rejected] = []
            for number in chosen:
                try:
                    # Held as its copy: a whole period's models would not fit in memory.
                    invoices.append(KeptInvoice.of(self.store.load_invoice(number)))
                except InvoiceError as error:
                    refused.append(Rejected(number=number, error=error))
            return self._previewed(period, invoices, refused, out_dir)
        started = export_again(self.app, self.store, self.config, chosen, period=period)
        log.info("run=%s exports %d invoices again", started.run, len(chosen))
        return self._accepted(started, period, [])

    def export_invoices(
        self,
        intake: Intake,
        *,
        period: str | None = None,
        preview: bool = False,
        out_dir: Path | None = None,
    ) -> RunAccepted:
        """A new run of invoices given anew, corrected or late, in their period (``period``,
        or the first valid invoice's): see :mod:`producer.operations.corrections`."""
        checked_intake(intake, close=False)
        period = period or intake.period or intake_period(intake.invoices[0])
        invoices, refused = of_period(intake, period)
        if preview:
            return self._previewed(period, invoices, refused, out_dir)
        admission, started = export_corrected(
            self.app, self.store, self.config, invoices, period=period, rejected=refused
        )
        if started is None:
            everything = [*refused, *admission.rejected]
            raise Refused(
                422,
                f"no invoice can be sent ({len(everything)} refused): nothing was exported",
                rejected=everything,
            )
        log.info(
            "run=%s period=%s exports %d invoices given anew", started.run, period, started.queued
        )
        return self._accepted(started, period, refused)

    def requeue(self, run: str, *, only: str | None = None) -> RequeueAccepted:
        """Queue the run's failed and unconfirmed invoices again; with ``only``, one group's."""
        record = self.store.run_record(run)
        if record is None:
            raise Refused(404, f"no run {run}")
        if record.preview:
            raise Refused(409, f"run {run} is a preview: nothing of it was sent; export instead")
        done = requeue_run(self.app, self.store, run, only=only)
        return RequeueAccepted(
            run=run, failed=done.failed, unconfirmed=done.unconfirmed, total=done.total
        )

    def failures(self, run: str) -> FailureGroupsView:
        """The run's failures grouped by message, largest group first."""
        if self.store.run_record(run) is None:
            raise Refused(404, f"no run {run}")
        return FailureGroupsView.of(run, failure_groups(self.store, run))

    def runs(self, limit: int) -> list[RunView]:
        return [self._view(summary) for summary in recent_runs(self.store, limit=limit)]

    def run(self, run: str) -> RunView:
        summary = summarize(self.store, run)
        if summary is None:
            raise Refused(404, f"no run {run}")
        return self._view(summary)

    def invoices(self, run: str, state: State, *, cursor: int, count: int) -> InvoicePage:
        if self.store.run_record(run) is None:
            raise Refused(404, f"no run {run}")
        following, records = items_in_state(self.store, run, state, cursor=cursor, count=count)
        return InvoicePage(
            run=run,
            state=state.value,
            cursor=int(following),
            invoices=[InvoiceView(**record.as_dict()) for record in records],
        )

    # -- helpers ------------------------------------------------------------------------

    def _accepted(
        self, started: RunStarted, period: str, rejected: Sequence[Rejected]
    ) -> RunAccepted:
        return RunAccepted(
            run=started.run,
            period=period,
            total=started.total,
            queued=started.queued,
            failed=started.rejected,
            per_export=started.per_export,
            warnings=started.warnings,
            rejected=rejections([*rejected, *started.not_exported, *started.not_sent]),
        )

    def _existing(self, started: RunStarted, period: str) -> RunAccepted:
        summary = summarize(self.store, started.run)
        record = self.store.run_record(started.run)
        return RunAccepted(
            run=started.run,
            period=period,
            total=started.total,
            queued=0,
            failed=summary.failed if summary else 0,
            existing=True,
            per_export=_per_export(summary) if summary else {},
            warnings=run_warnings(record.extra) if record else [],
            rejected=[],
        )

    def _previewed(
        self,
        period: str,
        invoices: Sequence[RunInvoice],
        rejected: Sequence[Rejected],
        out_dir: Path | None,
    ) -> RunAccepted:
        result: PreviewResult = preview_run(
            self.store, self.config, invoices, period=period, out_dir=out_dir, rejected=rejected
        )
        if result.warnings:
            self.store.set_run_fields(result.run, {"warnings": json.dumps(result.warnings)})
        log.info(
            "run=%s preview of %d invoices, %d failed", result.run, result.total, result.failed
        )
        return RunAccepted(
            run=result.run,
            period=period,
            total=result.total,
            queued=0,
            failed=result.failed,
            preview=True,
            per_export=result.per_export,
            warnings=result.warnings,
            rejected=rejections(rejected),
        )

    def _view(self, summary: RunSummary) -> RunView:
        record = self.store.run_record(summary.run)
        warnings = run_warnings(record.extra) if record else []
        return RunView(**summary.as_dict(), per_export=_per_export(summary), warnings=warnings)

    def _unknown(self, numbers: Sequence[str]) -> list[str]:
        return self.store.missing_invoices(numbers)

    def _period_of(self, number: str) -> str:
        # A run of single invoices is numbered in the period of its first invoice.
        try:
            return self.store.load_invoice(number).period
        except InvoiceError:
            return "export"


def intake_period(invoice: KeptInvoice | RunInvoice) -> str:
    """The period an invoice of a request belongs to."""
    if isinstance(invoice, KeptInvoice):
        return invoice.period or invoice.invoice().period
    return invoice.period


def of_period(intake: Intake, period: str) -> tuple[list[KeptInvoice], list[Rejected]]:
    """The intake's invoices of ``period``; each of another period is refused, and every
    one refused at intake stays refused."""
    invoices: list[KeptInvoice] = []
    refused = list(intake.rejected)
    for invoice in kept(intake.invoices):
        own = intake_period(invoice)
        if own == period:
            invoices.append(invoice)
        else:
            reason = f"invoice {invoice.number} is of period {own}, not {period}: export it apart"
            refused.append(
                Rejected(invoice.number, InvoiceError(reason, invoice_number=invoice.number))
            )
    return invoices, refused


def _per_export(summary: RunSummary) -> dict[str, int]:
    """The run's items per export (an invoice of no export is counted under none)."""
    return {name: sum(counts.values()) for name, counts in summary.by_export.items()}


__all__ = [
    "LISTED",
    "MAX_INVOICES",
    "SHOWN",
    "Operations",
    "Refused",
    "body_intake",
    "checked_intake",
    "intake_period",
    "of_period",
    "read_opter_xml",
    "rejections",
    "run_warnings",
    "stream_intake",
]
