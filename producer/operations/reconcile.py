"""A period proved complete in Heeros: start a reconciliation, read its report, act on it.

:class:`Reconciler` plans the look-ups of a period (every invoice the period
knows, in every export its runs sent it to), records the reconciliation and
starts its lanes of batch tasks (:mod:`worker.celery.reconciliation`). The report
counts and lists, per export, what Heeros holds against our records. One action
follows from it: export the missing invoices again (a normal run, through
:meth:`Operations.export`: same idempotency keys, nothing created twice) and poll
again the invoices Heeros has not finished with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from producer.operations.actions import Operations, Refused
from worker.celery.app import CeleryApp
from worker.celery.publisher import publish_tasks
from worker.celery.reconciliation import BATCH, LANES, RECONCILE_QUEUE, RECONCILE_TASK
from worker.config import ExportConfig
from worker.documents.names import check_period
from worker.errors import InvoiceError
from worker.reconciliation import NOT_LISTED
from worker.state.keys import State, split_item
from worker.state.reconciliations import (
    CATEGORIES,
    Batch,
    Category,
    Finding,
    ReconciliationRecord,
    Reconciliations,
)
from worker.state.store import StatusStore

log = logging.getLogger(__name__)

LISTED = 1000
"""How many findings of one category and export a report lists; its counts count all."""


class FindingView(BaseModel):
    """One invoice in one export: what Heeros holds and what our records say."""

    number: str
    export: str
    category: str
    heeros_id: str | None = None
    recorded_id: str | None = None
    heeros_status: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    run: str | None = None
    item: str | None = None
    state: str | None = None
    note: str | None = None


class ExportReport(BaseModel):
    """One export's (tenant's) part of a reconciliation."""

    export: str
    counts: dict[str, int] = Field(description="Findings per category.")
    findings: dict[str, list[FindingView]] = Field(
        description="Per category but confirmed, the invoices found (the first 1,000 each)."
    )


class ReconciliationView(BaseModel):
    """A reconciliation's head and progress."""

    reconciliation: str
    period: str
    exports: list[str]
    runs: list[str]
    created: float
    finished: float | None
    total: int
    checked: int
    state: str = Field(description="running, complete (all confirmed) or drift")
    counts: dict[str, int] = Field(default_factory=dict, description="Findings per category.")


class ReconciliationReport(ReconciliationView):
    """The whole report: per export, the counts and the invoices of each category."""

    per_export: list[ExportReport]
    not_listed: str = Field(description="What the report cannot show, and why.")


class ReconcileActed(BaseModel):
    """What the action on a report did."""

    reconciliation: str
    exported: list[str] = Field(description="The missing invoices exported again.")
    run: str | None = Field(description="The run that exports them (none when none is missing).")
    repolled: int = Field(description="Invoices Heeros has not finished with, polled again.")
    skipped: list[str] = Field(description="Not-final invoices without a record to poll.")


@dataclass(frozen=True)
class Plan:
    """The look-ups of a reconciliation, in batches."""

    exports: list[str]
    runs: list[str]
    batches: list[Batch]

    @property
    def total(self) -> int:
        return sum(len(batch.numbers) for batch in self.batches)


def view_of(record: ReconciliationRecord, findings: Sequence[Finding] | None) -> ReconciliationView:
    counts = count(findings) if findings is not None else {}
    if not record.done:
        state = "running"
    elif counts and counts.get(Category.CONFIRMED.value, 0) == record.total:
        state = "complete"
    else:
        state = "drift"
    return ReconciliationView(
        reconciliation=record.reconciliation,
        period=record.period,
        exports=record.exports,
        runs=record.runs,
        created=record.created,
        finished=record.finished,
        total=record.total,
        checked=record.checked,
        state=state,
        counts=counts,
    )


def count(findings: Sequence[Finding]) -> dict[str, int]:
    counts = {category.value: 0 for category in CATEGORIES}
    for finding in findings:
        counts[finding.category.value] += 1
    return counts


def report_of(record: ReconciliationRecord, findings: Sequence[Finding]) -> ReconciliationReport:
    per_export: list[ExportReport] = []
    for export in record.exports:
        own = [f for f in findings if f.export == export]
        listed: dict[str, list[FindingView]] = {}
        for category in CATEGORIES:
            if category is Category.CONFIRMED:
                continue
            chosen = [f for f in own if f.category is category][:LISTED]
            listed[category.value] = [FindingView(**f.as_dict()) for f in chosen]
        per_export.append(ExportReport(export=export, counts=count(own), findings=listed))
    head = view_of(record, findings)
    return ReconciliationReport(**head.model_dump(), per_export=per_export, not_listed=NOT_LISTED)


class Reconciler:
    """Reconciliations over a Celery app, the status store and the export configuration."""

    def __init__(
        self,
        app: CeleryApp,
        store: StatusStore,
        config: ExportConfig,
        *,
        confirm_deadline_s: float = 600.0,
        batch: int = BATCH,
        lanes: int = LANES,
    ) -> None:
        self.app = app
        self.store = store
        self.config = config
        self.recons = Reconciliations.for_store(store)
        self.confirm_deadline_s = confirm_deadline_s
        self.batch = batch
        self.lanes = lanes

    def plan(self, period: str, export: str | None = None) -> Plan:
        """Every invoice the period knows, in each export its runs sent it to."""
        try:
            check_period(period)
        except InvoiceError as error:
            raise Refused(422, str(error)) from None
        if export is not None and export not in {e.name for e in self.config.exports}:
            raise Refused(422, f"export: no export named {export[:80]!r} is configured")
        numbers = self.store.period_invoices(period)
        if not numbers:
            raise Refused(422, f"period: {period} has no invoices: it was never closed")
        runs = self.recons.period_runs(period)
        sent_to = self.recons.period_items(runs)
        everywhere = sorted({name for run in runs for name in run.exports})
        per_export: dict[str, list[str]] = {}
        for number in numbers:
            for name in sorted(sent_to.get(number) or everywhere):
                if export is None or name == export:
                    per_export.setdefault(name, []).append(number)
        exports = sorted(per_export) if export is None else [export]
        batches: list[Batch] = []
        for name in exports:
            chosen = per_export.get(name, [])
            for start in range(0, len(chosen), self.batch):
                batches.append(Batch(len(batches), name, chosen[start : start + self.batch]))
        return Plan(exports=exports, runs=[run.run for run in runs], batches=batches)

    def start(self, period: str, export: str | None = None) -> ReconciliationView:
        """Record a reconciliation of ``period`` and start its lanes."""
        plan = self.plan(period, export)
        record = ReconciliationRecord(
            reconciliation=self.recons.next_id(period),
            period=period,
            exports=plan.exports,
            runs=plan.runs,
            created=time.time(),
            total=plan.total,
            batches=len(plan.batches),
            lanes=self.lanes,
        )
        self.recons.create(record, plan.batches)
        if not plan.batches:
            self.recons.finish(record.reconciliation)
        first = range(min(self.lanes, len(plan.batches)))
        publish_tasks(
            self.app,
            RECONCILE_TASK,
            ((record.reconciliation, n) for n in first),
            queue=RECONCILE_QUEUE,
        )
        log.info(
            "reconciliation=%s period=%s: %d look-ups in %d batches",
            record.reconciliation,
            period,
            plan.total,
            len(plan.batches),
        )
        found = self.recons.record(record.reconciliation)
        return view_of(found or record, [])

    def _record(self, reconciliation: str) -> ReconciliationRecord:
        try:
            record = self.recons.record(reconciliation)
        except InvoiceError:
            record = None
        if record is None:
            raise Refused(404, f"no reconciliation {reconciliation[:60]}")
        return record

    def report(self, reconciliation: str) -> ReconciliationReport:
        record = self._record(reconciliation)
        return report_of(record, self.recons.findings(reconciliation))

    def recent(self, limit: int = 20) -> list[ReconciliationView]:
        """The newest reconciliations, newest first; counts once each is finished."""
        return [
            view_of(record, self.recons.findings(record.reconciliation) if record.done else None)
            for record in self.recons.recent(limit)
        ]

    def act(self, reconciliation: str, operations: Operations) -> ReconcileActed:
        """Export the missing invoices again and poll again those not yet final."""
        record = self._record(reconciliation)
        if not record.done:
            raise Refused(409, f"reconciliation {reconciliation} is still running")
        findings = self.recons.findings(reconciliation)
        missing = sorted({f.number for f in findings if f.category is Category.MISSING})
        run = None
        if missing:
            run = operations.export(missing).run
        repolled, skipped = self._repoll([f for f in findings if f.category is Category.NOT_FINAL])
        log.info(
            "reconciliation=%s acted: %d exported again (run %s), %d polled again",
            reconciliation,
            len(missing),
            run,
            repolled,
        )
        return ReconcileActed(
            reconciliation=reconciliation,
            exported=missing,
            run=run,
            repolled=repolled,
            skipped=skipped,
        )

    def _repoll(self, findings: Sequence[Finding]) -> tuple[int, list[str]]:
        """Put each back to ``sent`` under Heeros's id with a poll due now: the poll ends it."""
        now = time.time()
        repolled, skipped = 0, []
        for finding in findings:
            if finding.run is None or finding.item is None or finding.heeros_id is None:
                skipped.append(finding.number)
                continue
            _, export_index = split_item(finding.item)
            self.store.transition(
                finding.run,
                finding.item,
                State.SENT,
                export_index=export_index,
                force=True,
                poll=now,
                heeros_id=finding.heeros_id,
                polls="0",
                message="",
                deadline=f"{now + self.confirm_deadline_s:.3f}",
            )
            repolled += 1
        return repolled, skipped


__all__ = [
    "LISTED",
    "ExportReport",
    "FindingView",
    "Plan",
    "ReconcileActed",
    "Reconciler",
    "ReconciliationReport",
    "ReconciliationView",
    "report_of",
    "view_of",
]
