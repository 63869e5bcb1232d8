"""A period checked against Heeros, as plain functions of the stores and a Heeros client.

:func:`compare` is the whole judgement: what Heeros answered a look-up by the
invoice number (contract section 4) against our latest record of the invoice in
that export. :func:`check_batch` does one batch of look-ups and keeps what it
found; what Heeros could not be asked about is handed back for a later retry.

A look-up held back by the tenant's limits waits for its turn (a short wait at a
time, up to a budget), since a batch task is one of a few lanes of a
reconciliation and holds no place an export needs; past the budget it is handed
back like an unreachable Heeros. Nothing here knows Celery.

Heeros's look-up is per reference: it cannot list a tenant's invoices, so the
invoices in Heeros with our references that the period does not know are not
looked for (see :data:`NOT_LISTED`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from worker.errors import ExportError, PermanentError, Throttled, TransientError
from worker.heeros.remote import Heeros, RemoteState, RemoteStatus
from worker.state.reconciliations import (
    Batch,
    Category,
    Finding,
    PeriodRun,
    ReconciliationRecord,
    Reconciliations,
)

log = logging.getLogger(__name__)

NOT_LISTED = (
    "Invoices in Heeros with our references that the period does not know are not "
    "reported: Heeros's look-up is per reference, and the contract offers no listing "
    "of a tenant's invoices."
)
WAIT_STEP_S = 0.5
"""The longest single wait for the tenant's limits before asking again."""

MapFunction = Callable[[Callable[[str], "Looked"], Iterable[str]], Iterator["Looked"]]


@dataclass(frozen=True)
class Looked:
    """One look-up: Heeros's answer, or why it could not be had."""

    number: str
    found: RemoteStatus | None = None
    error: ExportError | None = None


@dataclass
class BatchOutcome:
    """What one batch did: findings kept, and the numbers to ask about again."""

    findings: list[Finding] = field(default_factory=list)
    again: dict[str, TransientError] = field(default_factory=dict)
    checked: int = 0
    finished: bool = False


def compare(
    number: str,
    export: str,
    found: RemoteStatus | None,
    record: tuple[str, str, Mapping[str, str]] | None,
) -> Finding:
    """What Heeros holds of ``number`` in ``export`` against our latest record of it."""
    run, item, raw = record if record is not None else (None, None, {})
    recorded = raw.get("heeros_id") or None
    ours = {"recorded_id": recorded, "run": run, "item": item, "state": raw.get("state") or None}
    if found is None:
        return Finding(number, export, Category.MISSING, **ours)
    theirs = {
        "heeros_id": found.invoice_id,
        "heeros_status": found.heeros_status,
        "error_code": found.error_code,
        "error_message": found.error_message,
    }
    if recorded is not None and recorded != found.invoice_id:
        return Finding(number, export, Category.MISMATCH, **theirs, **ours)
    category = {
        RemoteState.CONFIRMED: Category.CONFIRMED,
        RemoteState.PENDING: Category.NOT_FINAL,
        RemoteState.INCOMPLETE: Category.INCOMPLETE,
        RemoteState.ERROR: Category.ERROR,
    }[found.state]
    return Finding(number, export, category, **theirs, **ours)


def unchecked(
    number: str,
    export: str,
    error: ExportError,
    record: tuple[str, str, Mapping[str, str]] | None,
) -> Finding:
    """An invoice Heeros could not be asked about, with the reason."""
    run, item, raw = record if record is not None else (None, None, {})
    return Finding(
        number,
        export,
        Category.UNCHECKED,
        recorded_id=raw.get("heeros_id") or None,
        run=run,
        item=item,
        state=raw.get("state") or None,
        note=str(error),
    )


def look_up(
    client: Heeros,
    number: str,
    *,
    budget_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Looked:
    """Ask Heeros for ``number`` (and, for one in error, its code and message); held back by
    the limits, wait for a turn up to ``budget_s``."""
    ends = clock() + budget_s
    found: RemoteStatus | None = None
    while True:
        try:
            if found is None:
                found = client.find(number)
                if found is None:
                    return Looked(number)
            if found.state is RemoteState.ERROR and found.error_code is None:
                # The look-up names the status only: Heeros's code and message come with it.
                found = client.status(found.invoice_id)
            return Looked(number, found=found)
        except Throttled as error:
            left = ends - clock()
            if left <= 0:
                return Looked(number, error=error)
            sleep(min(error.retry_after, WAIT_STEP_S, left))
        except (TransientError, PermanentError) as error:
            return Looked(number, error=error)


def check_batch(
    recons: Reconciliations,
    record: ReconciliationRecord,
    runs: Sequence[PeriodRun],
    batch: Batch,
    client: Heeros,
    *,
    numbers: Sequence[str] | None = None,
    give_up: bool = False,
    budget_s: float = 30.0,
    map_function: MapFunction | None = None,
) -> BatchOutcome:
    """Look up the batch's invoices (or ``numbers`` of it) and keep what was found.

    With ``give_up``, the ones Heeros could not be asked about are kept as unchecked
    instead of handed back. The reconciliation is noted finished when its last
    finding is kept.
    """
    chosen = list(batch.numbers if numbers is None else numbers)
    records = recons.latest_records(runs, batch.export, chosen)
    mapper = map_function or map
    outcome = BatchOutcome()
    for looked in mapper(lambda n: look_up(client, n, budget_s=budget_s), chosen):
        ours = records.get(looked.number)
        if looked.error is None:
            outcome.findings.append(compare(looked.number, batch.export, looked.found, ours))
        elif give_up or isinstance(looked.error, PermanentError):
            outcome.findings.append(unchecked(looked.number, batch.export, looked.error, ours))
        elif isinstance(looked.error, TransientError):
            outcome.again[looked.number] = looked.error
    outcome.checked = recons.save_findings(record.reconciliation, outcome.findings, record.exports)
    if outcome.checked >= record.total and recons.finish(record.reconciliation):
        outcome.finished = True
        log.info(
            "reconciliation=%s period=%s finished: %d checked",
            record.reconciliation,
            record.period,
            outcome.checked,
        )
    return outcome


def period_runs(recons: Reconciliations, record: ReconciliationRecord) -> list[PeriodRun]:
    """The runs the reconciliation compares with, as it recorded them."""
    chosen = set(record.runs)
    return [run for run in recons.period_runs(record.period) if run.run in chosen]


__all__ = [
    "NOT_LISTED",
    "BatchOutcome",
    "Looked",
    "check_batch",
    "compare",
    "look_up",
    "period_runs",
    "unchecked",
]
