"""The reconciliation's comparison and batches, with fakeredis and a Heeros behind MockTransport."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from worker.errors import HeerosUnavailable, Throttled
from worker.heeros.client import HeerosClient
from worker.heeros.remote import RemoteState, RemoteStatus
from worker.heeros.sessions import clear_token_cache
from worker.reconciliation import check_batch, compare, look_up, period_runs
from worker.state.keys import State, item_id
from worker.state.reconciliations import (
    Batch,
    Category,
    ReconciliationRecord,
    Reconciliations,
)
from worker.state.store import RunRecord, StatusStore

EXPORT = "Heeros (API)"


class Ledger:
    """A scripted Heeros: look-ups by reference, statuses by id."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, str]] = {}
        self.errors: dict[str, dict[str, str]] = {}
        self.down = False
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path.endswith("/auth/login"):
            return httpx.Response(200, json={"token": "t", "expiresIn": 3600})
        if self.down:
            return httpx.Response(503, json={"errorCode": "DOWN", "errorMessage": "down"})
        if request.url.path.endswith("/sales-invoices"):
            found = self.items.get(request.url.params["externalReference"])
            return httpx.Response(200, json={"items": [found] if found else []})
        invoice_id = request.url.path.rsplit("/", 1)[1]
        return httpx.Response(
            200, json={"invoiceId": invoice_id, "status": "ERROR", **self.errors[invoice_id]}
        )


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    clear_token_cache()
    yield Ledger()
    clear_token_cache()


@pytest.fixture
def client(ledger: Ledger) -> HeerosClient:
    return HeerosClient(
        base_url="https://heeros.test/api",
        office_code="29010",
        customer_code="00079",
        client_identity="demo",
        client_key=SecretStr("secret-key"),
        transport=httpx.MockTransport(ledger),
    )


def _status(state: RemoteState, invoice_id: str = "H-1", status: str = "TO_LEDGER") -> RemoteStatus:
    return RemoteStatus(invoice_id=invoice_id, state=state, heeros_status=status)


def test_compare_sorts_each_answer_into_its_category() -> None:
    ours = ("R", "1/0", {"heeros_id": "H-1", "state": "exported"})
    assert compare("1", EXPORT, None, ours).category is Category.MISSING
    assert compare("1", EXPORT, None, ours).recorded_id == "H-1"
    assert compare("1", EXPORT, _status(RemoteState.CONFIRMED), ours).category is (
        Category.CONFIRMED
    )
    pending = compare("1", EXPORT, _status(RemoteState.PENDING, status="PROCESSING"), ours)
    assert (pending.category, pending.heeros_status, pending.run) == (
        Category.NOT_FINAL,
        "PROCESSING",
        "R",
    )
    assert compare("1", EXPORT, _status(RemoteState.INCOMPLETE), ours).category is (
        Category.INCOMPLETE
    )
    failed = RemoteStatus("H-1", RemoteState.ERROR, "ERROR", "E1", "broken")
    found = compare("1", EXPORT, failed, ours)
    assert (found.category, found.error_code, found.error_message) == (
        Category.ERROR,
        "E1",
        "broken",
    )
    other = compare("1", EXPORT, _status(RemoteState.CONFIRMED, invoice_id="H-9"), ours)
    assert (other.category, other.heeros_id, other.recorded_id) == (
        Category.MISMATCH,
        "H-9",
        "H-1",
    )
    # without an id of ours there is nothing to mismatch
    assert compare("1", EXPORT, _status(RemoteState.CONFIRMED), None).category is (
        Category.CONFIRMED
    )


def test_look_up_asks_the_status_of_an_invoice_in_error(
    client: HeerosClient, ledger: Ledger
) -> None:
    ledger.items["1"] = {"invoiceId": "H-1", "status": "ERROR"}
    ledger.errors["H-1"] = {"errorCode": "E7", "errorMessage": "lost the buyer"}
    looked = look_up(client, "1", budget_s=1)
    assert looked.found is not None
    assert (looked.found.error_code, looked.found.error_message) == ("E7", "lost the buyer")


class Held:
    """Held back twice by the limits, then answers."""

    def __init__(self) -> None:
        self.calls = 0

    def find(self, number: str) -> RemoteStatus | None:
        self.calls += 1
        if self.calls < 3:
            raise Throttled("t", 0.01)
        return None

    def status(self, invoice_id: str) -> RemoteStatus:
        raise AssertionError

    def send(self, *args: object, **kwargs: object) -> str:
        raise AssertionError


def test_look_up_waits_for_its_turn_then_gives_up_past_its_budget() -> None:
    slept: list[float] = []
    held = Held()
    assert look_up(held, "1", budget_s=5, sleep=slept.append).error is None  # type: ignore[arg-type]
    assert len(slept) == 2
    now = iter([0.0, 10.0])
    gave_up = look_up(Held(), "1", budget_s=5, clock=lambda: next(now), sleep=slept.append)  # type: ignore[arg-type]
    assert isinstance(gave_up.error, Throttled)


def _period(store: StatusStore, numbers: list[str], ids: dict[str, str]) -> None:
    store.add_period_invoices("2026-11", numbers)
    store.create_run(
        RunRecord(
            run="2026-11-0001", period="2026-11", total=len(numbers), created=1.0, exports=[EXPORT]
        ),
        [(item_id(n, 0), n, 0) for n in numbers],
        {},
    )
    for number, heeros_id in ids.items():
        store.transition(
            "2026-11-0001", item_id(number, 0), State.EXPORTED, export_index=0, heeros_id=heeros_id
        )


def _record(recons: Reconciliations, total: int) -> ReconciliationRecord:
    record = ReconciliationRecord(
        reconciliation="2026-11-R001",
        period="2026-11",
        exports=[EXPORT],
        runs=["2026-11-0001"],
        created=2.0,
        total=total,
        batches=1,
        lanes=1,
    )
    recons.create(record, [Batch(0, EXPORT, ["1", "2", "3"])])
    found = recons.record(record.reconciliation)
    assert found is not None
    return found


def test_a_batch_keeps_its_findings_and_finishes_the_reconciliation(
    store: StatusStore, client: HeerosClient, ledger: Ledger
) -> None:
    _period(store, ["1", "2", "3"], {"1": "H-1", "2": "H-2", "3": "H-3"})
    ledger.items["1"] = {"invoiceId": "H-1", "status": "TO_LEDGER"}
    ledger.items["3"] = {"invoiceId": "H-30", "status": "TO_LEDGER"}
    recons = Reconciliations.for_store(store)
    record = _record(recons, 3)
    runs = period_runs(recons, record)
    batch = recons.batch(record.reconciliation, 0)
    assert batch is not None
    outcome = check_batch(recons, record, runs, batch, client)
    assert outcome.finished and outcome.checked == 3 and not outcome.again
    found = {f.number: f for f in recons.findings(record.reconciliation)}
    assert found["1"].category is Category.CONFIRMED
    assert (found["2"].category, found["2"].recorded_id) == (Category.MISSING, "H-2")
    assert (found["3"].category, found["3"].heeros_id) == (Category.MISMATCH, "H-30")
    # a batch delivered again counts once
    again = check_batch(recons, record, runs, batch, client)
    assert again.checked == 3 and not again.finished


def test_heeros_unreachable_hands_the_numbers_back_then_keeps_them_unchecked(
    store: StatusStore, client: HeerosClient, ledger: Ledger
) -> None:
    _period(store, ["1", "2", "3"], {})
    recons = Reconciliations.for_store(store)
    record = _record(recons, 3)
    batch = recons.batch(record.reconciliation, 0)
    assert batch is not None
    ledger.down = True
    runs = period_runs(recons, record)
    outcome = check_batch(recons, record, runs, batch, client)
    assert sorted(outcome.again) == ["1", "2", "3"]
    assert all(isinstance(e, HeerosUnavailable) for e in outcome.again.values())
    assert outcome.checked == 0
    final = check_batch(recons, record, runs, batch, client, numbers=["2"], give_up=True)
    assert final.checked == 1
    (finding,) = recons.findings(record.reconciliation)
    assert finding.category is Category.UNCHECKED and finding.note
    assert json.loads(finding.to_json())["category"] == "unchecked"
