"""The reconciliations store on fakeredis."""

from __future__ import annotations

import pytest

from worker.errors import InvoiceError
from worker.state.keys import State, item_id
from worker.state.reconciliations import (
    Batch,
    Category,
    Finding,
    ReconciliationRecord,
    Reconciliations,
)
from worker.state.store import RunRecord, StatusStore


def _record(name: str, created: float = 1.0) -> ReconciliationRecord:
    return ReconciliationRecord(
        reconciliation=name,
        period="2026-11",
        exports=["A", "B"],
        runs=["2026-11-0001"],
        created=created,
        total=3,
        batches=2,
        lanes=4,
    )


def test_a_reconciliation_is_kept_with_its_plan_findings_and_end(store: StatusStore) -> None:
    recons = Reconciliations.for_store(store)
    name = recons.next_id("2026-11")
    assert name == "2026-11-R001" and recons.next_id("2026-11") == "2026-11-R002"
    recons.create(_record(name), [Batch(0, "A", ["1", "2"]), Batch(1, "B", ["1"])])
    assert recons.batch(name, 1) == Batch(1, "B", ["1"])
    assert recons.batch(name, 2) is None
    found = Finding("1", "B", Category.MISSING, recorded_id="H-1")
    assert recons.save_findings(name, [found], ["A", "B"]) == 1
    assert recons.save_findings(name, [found], ["A", "B"]) == 1  # again: counted once
    assert recons.save_findings(name, [Finding("1", "A", Category.CONFIRMED)], ["A", "B"]) == 2
    assert recons.findings(name)[1] == found
    record = recons.record(name)
    assert record is not None and record.checked == 2 and not record.done
    assert recons.finish(name, at=5.0) and not recons.finish(name, at=6.0)
    done = recons.record(name)
    assert done is not None and done.finished == 5.0
    assert [r.reconciliation for r in recons.recent(10)] == [name]


def test_the_period_runs_and_latest_records_are_read(store: StatusStore) -> None:
    for run, created in (("2026-11-0001", 1.0), ("2026-11-0002", 2.0)):
        store.create_run(
            RunRecord(run=run, period="2026-11", total=1, created=created, exports=["A"]),
            [(item_id("1", 0), "1", 0)],
            {},
        )
    store.create_run(
        RunRecord(run="2026-12-0001", period="2026-12", total=1, created=3.0, exports=["A"]),
        [(item_id("1", 0), "1", 0)],
        {},
    )
    store.transition("2026-11-0001", "1/0", State.EXPORTED, export_index=0, heeros_id="H-1")
    recons = Reconciliations.for_store(store)
    runs = recons.period_runs("2026-11")
    assert [r.run for r in runs] == ["2026-11-0001", "2026-11-0002"]
    assert recons.period_items(runs) == {"1": {"A"}}
    # the later run without an id does not hide the earlier run's id
    run, item, raw = recons.latest_records(runs, "A", ["1"])["1"]
    assert (run, item, raw["heeros_id"]) == ("2026-11-0001", "1/0", "H-1")


def test_no_key_is_built_from_a_bad_id(store: StatusStore) -> None:
    recons = Reconciliations.for_store(store)
    with pytest.raises(InvoiceError):
        recons.record("a:b")
    with pytest.raises(InvoiceError):
        recons.next_id("K1:x")
