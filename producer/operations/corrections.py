"""Corrections: which invoices a run may send, and the kept copy each one sends.

An invoice refused at close, or refused by Heeros, is corrected in Opter and
exported again from its corrected data (``heeros-export export --invoices``, or
``POST /exports`` with the invoices' bodies): a new run of its period. The rules,
for each invoice of a close or of such an export (:func:`admit`):

- its number held by another period is refused, naming that period: the copy
  kept for that period is never touched;
- Heeros already holds it (our records have its Heeros id: exported, sent and
  awaiting confirmation, incomplete, unconfirmed, or ended in error there) is not
  sent again: "Heeros already holds invoice N as X: correct it with a credit note";
- still queued or being sent in a run, it is refused until that run has ended;
- otherwise (never sent, refused at intake, refused by Heeros, failed before
  Heeros stored it) it is sent: a corrected version becomes the current kept copy,
  and the copy it corrects stays under its own version
  (:class:`worker.state.copies.KeptCopies`).

Each run records the version of each invoice it sends, and the idempotency key
is made of the tenant, the number and that version, so a corrected invoice is
never answered with what Heeros answered the version it corrects, and no version
is ever created twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from producer.operations.runinvoices import KeptInvoice, Rejected
from worker.errors import InvoiceError
from worker.state.copies import Holding, KeptCopies
from worker.state.keys import State, item_id
from worker.state.reconciliations import Reconciliations
from worker.state.store import StatusStore

log = logging.getLogger(__name__)

BUSY_STATES = frozenset({State.QUEUED, State.SENDING})
"""States of an item whose send has not ended: its invoice cannot be replaced meanwhile."""


def held_message(number: str, heeros_id: str) -> str:
    """Why an invoice Heeros already holds is not sent again."""
    return f"Heeros already holds invoice {number} as {heeros_id}: correct it with a credit note"


def other_period_message(number: str, holder: str, period: str) -> str:
    """Why an invoice whose number another period holds is refused."""
    return (
        f"invoice {number}: the number is held by period {holder}, so an invoice of period "
        f"{period} cannot take it (the copy kept for {holder} is left as it is)"
    )


def busy_message(number: str, run: str) -> str:
    """Why an invoice still being exported cannot be replaced."""
    return (
        f"invoice {number} is still being exported in run {run}: export its correction "
        "once that run has ended"
    )


@dataclass(frozen=True)
class Standing:
    """What our records say of an invoice number in Heeros."""

    heeros_id: str | None = None
    """The id Heeros holds it under; None when Heeros holds no version of it."""
    busy_in: str | None = None
    """A run in which it is still queued or being sent."""


@dataclass
class Admission:
    """The invoices a run may send, each as the copy it sends, and those refused."""

    invoices: list[KeptInvoice] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    replaced: dict[str, str] = field(default_factory=dict)
    """Invoice number -> the version its new copy replaced as the current one."""


def admit(store: StatusStore, invoices: Sequence[KeptInvoice], *, period: str) -> Admission:
    """Apply the rules of this module to ``invoices`` of ``period``; keep the copies sent.

    Numbers no period holds are claimed for ``period`` in one round trip; a number
    already known is looked up in the runs that sent it.
    """
    copies = KeptCopies.for_store(store)
    holdings = copies.holdings([invoice.number for invoice in invoices])
    admission = Admission()
    fresh: list[KeptInvoice] = []
    legacy_runs: dict[str, list[str]] = {}
    for invoice in invoices:
        holding = holdings[invoice.number]
        if not holding.known:
            fresh.append(invoice)
            continue
        refusal = _refusal(store, holding, invoice, period, legacy_runs)
        if refusal is not None:
            admission.rejected.append(Rejected(invoice.number, InvoiceError(refusal)))
            continue
        if holding.version != invoice.version or not holding.indexed:
            earlier = copies.replace(invoice.number, invoice.copy, invoice.version, period=period)
            if earlier is not None:
                admission.replaced[invoice.number] = earlier
                log.info(
                    "period=%s invoice=%s corrected: version %s replaces %s",
                    period,
                    invoice.number,
                    invoice.version,
                    earlier,
                )
        admission.invoices.append(invoice)
    taken = copies.claim(period, {invoice.number: invoice.version for invoice in fresh})
    for invoice in fresh:
        if invoice.number in taken:
            message = other_period_message(invoice.number, taken[invoice.number], period)
            admission.rejected.append(Rejected(invoice.number, InvoiceError(message)))
        else:
            admission.invoices.append(invoice)
    return admission


def _refusal(
    store: StatusStore,
    holding: Holding,
    invoice: KeptInvoice,
    period: str,
    legacy_runs: dict[str, list[str]],
) -> str | None:
    """Why ``invoice`` may not be sent as the number's copy in ``period`` (None: it may)."""
    if holding.period != period:
        assert holding.period is not None
        return other_period_message(invoice.number, holding.period, period)
    runs = holding.runs
    if not holding.indexed and not runs:
        # Kept before runs were recorded per invoice: its period's runs hold its records.
        if period not in legacy_runs:
            found = Reconciliations.for_store(store).period_runs(period)
            legacy_runs[period] = [run.run for run in found]
        runs = legacy_runs[period]
    standing = standing_of(store, invoice.number, runs)
    if standing.heeros_id is not None:
        return held_message(invoice.number, standing.heeros_id)
    if standing.busy_in is not None:
        return busy_message(invoice.number, standing.busy_in)
    return None


def standing_of(store: StatusStore, number: str, runs: Sequence[str]) -> Standing:
    """What the items of ``number`` in ``runs`` say: the Heeros id one of them holds (the
    latest), or a run in which it is still on its way (two round trips)."""
    exports = KeptCopies.for_store(store).run_exports(runs)
    pairs = [(run, item_id(number, index)) for run in runs for index in range(exports[run])]
    heeros_id: str | None = None
    busy_in: str | None = None
    for record in store.records(pairs):
        if record is None or record.state is State.PREVIEW:
            continue
        if record.heeros_id:
            heeros_id = record.heeros_id
        elif record.state in BUSY_STATES:
            busy_in = record.run
    return Standing(heeros_id=heeros_id, busy_in=busy_in)


__all__ = [
    "Admission",
    "Standing",
    "admit",
    "busy_message",
    "held_message",
    "other_period_message",
    "standing_of",
]
