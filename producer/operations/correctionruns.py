"""Runs of invoices given anew: corrected after a refusal, or late for their period."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from producer.operations.corrections import Admission, admit
from producer.operations.runinvoices import KeptInvoice, Rejected
from producer.operations.runs import RunStarted, start_run
from worker.celery.app import CeleryApp
from worker.config import ExportConfig
from worker.documents.names import check_period
from worker.state.store import StatusStore

LABELLED = 5
"""How many invoice numbers a run's label names."""


def export_corrected(
    app: CeleryApp,
    store: StatusStore,
    config: ExportConfig,
    invoices: Sequence[KeptInvoice],
    *,
    period: str,
    rejected: Sequence[Rejected] = (),
) -> tuple[Admission, RunStarted | None]:
    """A new run of ``period`` of invoices given anew, each one sent under the rules of
    :mod:`producer.operations.corrections`; no run (None) when none of them may be sent.

    ``rejected`` are the invoices refused at intake: recorded in the run, failed alone.
    """
    check_period(period)
    admission = admit(store, invoices, period=period)
    if not admission.invoices:
        return admission, None
    store.add_period_invoices(period, (invoice.number for invoice in admission.invoices))
    numbers = [invoice.number for invoice in admission.invoices]
    more = " ..." if len(numbers) > LABELLED else ""
    started = start_run(
        app,
        store,
        config,
        admission.invoices,
        period=period,
        rejected=[*rejected, *admission.rejected],
        label="correct " + " ".join(numbers[:LABELLED]) + more,
    )
    return admission, replace(started, not_sent=admission.rejected)


__all__ = ["LABELLED", "export_corrected"]
