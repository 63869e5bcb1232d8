"""The export triggers behind the HTTP API: close a period, export again, re-queue, read runs.

:class:`Operations` does what each route asks, over the Celery app, the status
store and the export configuration, and answers with the models below (which
are also the API's OpenAPI schemas). What cannot be done raises :class:`Refused`
with the status and a reason that names the invoice and the field.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from producer.operations.intake import Intake, read_json, read_opter_xml, read_stream
from producer.operations.preview import PreviewResult, preview_run
from producer.operations.runs import (
    KeptInvoice,
    Rejected,
    RunInvoice,
    RunStarted,
    close_period,
    export_again,
    requeue_run,
)
from producer.operations.views import (
    ClosePeriod,
    FailureGroupsView,
    InvoicePage,
    InvoiceView,
    Rejection,
    RequeueAccepted,
    RunAccepted,
    RunView,
)
from worker.celery.app import CeleryApp
from worker.config import ExportConfig
from worker.errors import InvoiceError, Kind
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

SHOWN = 20
"""How many invoice numbers an error names before it says how many more."""
LISTED = 100
"""How many refused invoices an answer lists, with their reasons; its figures count all."""
MAX_INVOICES = 10_000
"""The most invoices one close request takes (``invoices`` or ``opter_xml``). A larger
period is closed from the command line (``heeros-export close-period``), which has no
such maximum, or split into periods of at most this many, one request each."""


class Refused(Exception):
    """Raised when a request cannot be carried out; answered with its status and reason."""

    def __init__(self, status: int, detail: str, *, rejected: Sequence[Rejected] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.rejected = list(rejected)


# -- the operations behind the routes -----------------------------------------------------


def _listing(numbers: Sequence[str]) -> str:
    more = f" and {len(numbers) - SHOWN} more" if len(numbers) > SHOWN else ""
    return ", ".join(numbers[:SHOWN]) + more


def rejections(rejected: Sequence[Rejected]) -> list[Rejection]:
    """The first :data:`LISTED` refused invoices as the API shows them."""
    return [Rejection(number=r.number, reason=str(r.error)) for r in rejected[:LISTED]]


def run_warnings(extra: dict[str, str]) -> list[str]:
    """The warnings kept with a run (customers whose group has no Heeros export)."""
    try:
        found = json.loads(extra.get("warnings") or "[]")
    except ValueError:
        return []
    return [str(w) for w in found] if isinstance(found, list) else []


def _unique_rejections(intake: Intake) -> None:
    # Two refused invoices under one name would be one item of the run, which could
    # then never reach its total: the second and later get their position's mark.
    seen: set[str] = set()
    for position, rejection in enumerate(intake.rejected):
        if rejection.number in seen:
            unique = f"{rejection.number}#{position + 1}"
            intake.rejected[position] = Rejected(number=unique, error=rejection.error)
        seen.add(intake.rejected[position].number)


def _check_body(period: str, named: str | None, given: set[str]) -> None:
    if named is not None and named != period:
        raise Refused(422, f"period: the body names {named[:40]}, the path {period}")
    if len(given) != 1:
        raise Refused(
            422,
            "give the invoices either as 'invoices' (JSON per the invoice model) or as "
            "'opter_xml' (base64-encoded Opter XML documents), one of the two",
        )


def body_intake(body: ClosePeriod, period: str) -> Intake:
    """The invoices of a close request already read, each valid or set aside with its reason."""
    given = {key for key in ("invoices", "opter_xml") if getattr(body, key) is not None}
    _check_body(period, body.period, given)
    if body.invoices is not None:
        return read_json(body.invoices, source="invoices")
    return read_opter_xml(body.opter_xml or [])


def stream_intake(stream: IO[bytes], period: str, *, most: int = MAX_INVOICES) -> Intake:
    """The invoices of a close request's body, read a piece at a time (at most ``most``).

    Refuses (413) a body of more invoices, (422) one that is not a close request.
    """
    try:
        intake = read_stream(stream, source="body", body=True, most=most)
    except InvoiceError as error:
        raise Refused(422, str(error)) from None
    if intake.over:
        raise Refused(
            413,
            f"more than {most:,} invoices in one request: close a larger period from the "
            "command line (heeros-export close-period), or split it into periods of at "
            f"most {most:,} invoices, one request each",
        )
    _check_body(period, intake.period, intake.given)
    return intake


def checked_intake(intake: Intake) -> Intake:
    """Refuses (422) a period without invoices, with a number twice, or with none valid."""
    if not intake.invoices and not intake.rejected:
        raise Refused(422, "invoices: there is no invoice to close the period with")
    counted = Counter(invoice.number for invoice in intake.invoices)
    twice = {number for number, times in counted.items() if times > 1}
    twice |= {r.number for r in intake.rejected if r.number in counted}
    if twice:
        raise Refused(422, f"invoice numbers appear twice: {_listing(sorted(twice))}")
    _unique_rejections(intake)
    if not intake.invoices:
        refused = len(intake.rejected)
        listed = f"; the first {LISTED} are listed" if refused > LISTED else ""
        raise Refused(
            422,
            f"no valid invoice ({refused} refused{listed}): nothing was closed",
            rejected=intake.rejected,
        )
    return intake


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
                    f"invoices: no copy is kept of {_listing(unknown)}: only invoices of a "
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
            rejected=rejections([*rejected, *started.not_exported]),
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


def _per_export(summary: RunSummary) -> dict[str, int]:
    """The run's items per export. An invoice of no export is recorded as failed under the
    run's first export, though it went to none: it is not counted there."""
    per_export = {name: sum(counts.values()) for name, counts in summary.by_export.items()}
    nowhere = summary.kinds.get(Kind.NO_EXPORT.value, 0)
    first = summary.exports[0] if summary.exports else None
    if nowhere and first in per_export:
        per_export[first] -= nowhere
        if per_export[first] <= 0:
            del per_export[first]
    return per_export


__all__ = [
    "LISTED",
    "MAX_INVOICES",
    "SHOWN",
    "Operations",
    "Refused",
    "body_intake",
    "checked_intake",
    "read_opter_xml",
    "rejections",
    "run_warnings",
    "stream_intake",
]
