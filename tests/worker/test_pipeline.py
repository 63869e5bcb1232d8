"""The pipeline functions with fakeredis and a Heeros behind httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from producer.operations.samples import sample_invoices
from worker.config import Export, parse_export_config
from worker.documents.keptcopy import compress_invoice
from worker.errors import HeerosUnavailable
from worker.heeros.client import HeerosClient
from worker.heeros.sessions import clear_token_cache
from worker.pipeline import (
    Heeros,
    Outcome,
    Target,
    Timing,
    check_invoice,
    idempotency_key,
    send_invoice,
)
from worker.state.keys import State, item_id
from worker.state.store import RunRecord, StatusStore

CONFIG = """
[[exports]]
name = "Heeros (API)"
type = "XmlSerializer"
encoding = "UTF-8"
customer_code = "00079"
office_code = "29010"
start_text = "MoveOnlyToLedger=true"
one_file_per_invoice = true
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "demo"
client_key_env = "KEY"

[[groups]]
name = "G"
exports = ["Heeros (API)"]
default = true
"""
TIMING = Timing(poll_first_s=2, poll_max_s=30, confirm_deadline_s=100)


class ScriptedHeeros:
    """A scripted Heeros: records requests, answers from a table keyed by the call."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.send_answer: httpx.Response = httpx.Response(
            202, json={"invoiceId": "H-1", "status": "RECEIVED"}
        )
        self.status_answer: httpx.Response = httpx.Response(
            200, json={"invoiceId": "H-1", "status": "PROCESSING"}
        )
        self.found: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/auth/login"):
            return httpx.Response(200, json={"token": "t", "expiresIn": 3600})
        if request.method == "POST":
            return self.send_answer
        if path.endswith("/sales-invoices"):
            return httpx.Response(200, json={"items": self.found})
        return self.status_answer

    def sends(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and "login" not in r.url.path]


@pytest.fixture
def heeros() -> Iterator[ScriptedHeeros]:
    clear_token_cache()
    yield ScriptedHeeros()
    clear_token_cache()


@pytest.fixture
def export() -> Export:
    return parse_export_config(CONFIG, environ={"KEY": "secret-key"}).export("Heeros (API)")


@pytest.fixture
def resolve(heeros: ScriptedHeeros, export: Export):  # type: ignore[no-untyped-def]
    client = HeerosClient(
        base_url="https://heeros.test/api",
        office_code=export.office_code,
        customer_code=export.customer_code,
        client_identity="demo",
        client_key=export.require_client_key(),
        transport=httpx.MockTransport(heeros),
    )

    def lookup(name: str) -> tuple[Target, Heeros]:
        assert name == export.name
        return export, client

    return lookup


@pytest.fixture
def run(store: StatusStore) -> str:
    invoices = list(sample_invoices(2))
    store.create_run(
        RunRecord(run="R", period="2026-11", total=2, created=1.0, exports=["Heeros (API)"]),
        [(item_id(i.number, 0), i.number, 0) for i in invoices],
        {i.number: compress_invoice(i) for i in invoices},
    )
    return item_id(invoices[0].number, 0)


def _clock(value: float):  # type: ignore[no-untyped-def]
    return lambda: value


def test_send_records_the_id_and_schedules_a_poll(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
) -> None:
    assert send_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(1000)) is Outcome.SENT
    record = store.item("R", run)
    assert record is not None
    assert (record.state, record.heeros_id, record.attempts) == (State.SENT, "H-1", 1)
    assert record.deadline == 1100
    assert store.claim_polls(now=1002, limit=5, lease_s=10) == [("R", run)]
    (request,) = heeros.sends()
    body = json.loads(request.content)
    assert body["externalReference"] == "100001"
    assert body["options"]["moveOnlyToLedger"] is True
    assert "<Finvoice" in body["content"]
    assert request.headers["Idempotency-Key"] == idempotency_key(
        resolve("Heeros (API)")[0], "100001"
    )
    assert request.url.params["la"] == "00079"


def test_a_second_delivery_sends_nothing_again(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
) -> None:
    send_invoice(store, resolve, "R", run, timing=TIMING)
    assert send_invoice(store, resolve, "R", run, timing=TIMING) is Outcome.SKIPPED
    assert len(heeros.sends()) == 1


def test_after_a_lost_answer_heeros_is_asked_first(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
) -> None:
    store.transition("R", run, State.SENDING, export_index=0)  # the crash left it here
    heeros.found = [{"invoiceId": "H-9", "status": "RECEIVED"}]
    assert send_invoice(store, resolve, "R", run, timing=TIMING) is Outcome.SENT
    assert heeros.sends() == []
    record = store.item("R", run)
    assert record is not None and record.heeros_id == "H-9"


def test_after_a_lost_request_it_is_sent(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
) -> None:
    store.transition("R", run, State.SENDING, export_index=0)
    assert send_invoice(store, resolve, "R", run, timing=TIMING) is Outcome.SENT
    assert len(heeros.sends()) == 1


def test_validation_errors_fail_the_invoice_with_message_five(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
) -> None:
    heeros.send_answer = httpx.Response(
        400,
        json={
            "errorCode": "VALIDATION_FAILED",
            "errorMessage": "bad",
            "validationErrors": [{"path": "a", "message": "x"}, {"path": "b", "message": "y"}],
        },
    )
    assert send_invoice(store, resolve, "R", run, timing=TIMING) is Outcome.FAILED
    record = store.item("R", run)
    assert record is not None
    assert record.state is State.FAILED and record.kind == "validation"
    assert record.message == (
        "It was not possible to send the invoice 100001 to Heeros due to validation errors. "
        "Number of errors: 2. Please contact Opter support."
    )
    assert store.polls_pending() == 0


def test_transient_errors_are_raised_and_leave_the_send_recorded(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
) -> None:
    heeros.send_answer = httpx.Response(503, json={})
    with pytest.raises(HeerosUnavailable):
        send_invoice(store, resolve, "R", run, timing=TIMING)
    record = store.item("R", run)
    assert record is not None and (record.state, record.attempts) == (State.SENDING, 1)


def test_an_invoice_without_its_copy_fails_alone(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
) -> None:
    store.redis.delete(store.keys.payload("100001"))
    assert send_invoice(store, resolve, "R", run, timing=TIMING) is Outcome.FAILED
    record = store.item("R", run)
    assert record is not None and record.kind == "invoice"
    assert record.message == (
        "The invoice 100001 could not be exported: invoice 100001: no copy is kept to export"
    )
    other = store.item("R", item_id("100002", 0))
    assert other is not None and other.state is State.QUEUED
    assert heeros.sends() == []


@pytest.mark.parametrize(
    ("status", "state", "message"),
    [
        ("TO_LEDGER", State.EXPORTED, None),
        ("COMPLETE", State.EXPORTED, None),
        (
            "INCOMPLETE",
            State.INCOMPLETE,
            "The invoice has been sent but it could not be processed in Heeros because it is "
            "incomplete. Please check incomplete invoices in Heeros. Invoice ID in Heeros: H-1.",
        ),
    ],
)
def test_check_ends_the_invoice_as_heeros_says(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
    status: str,
    state: State,
    message: str | None,
) -> None:
    send_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(1000))
    heeros.status_answer = httpx.Response(200, json={"invoiceId": "H-1", "status": status})
    check_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(1003))
    record = store.item("R", run)
    assert record is not None and (record.state, record.message) == (state, message)
    assert store.polls_pending() == 0


def test_error_in_heeros_fails_with_message_two(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
) -> None:
    send_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(1000))
    heeros.status_answer = httpx.Response(
        200,
        json={
            "invoiceId": "H-1",
            "status": "ERROR",
            "errorCode": "E42",
            "errorMessage": "no ledger",
        },
    )
    assert check_invoice(store, resolve, "R", run, timing=TIMING) is Outcome.FAILED
    record = store.item("R", run)
    assert record is not None and record.message == (
        "It was not possible to send the invoice to Heeros. Error code from Heeros: E42. "
        "Error message from Heeros: no ledger"
    )


def test_pending_backs_off_then_is_unconfirmed_at_the_deadline(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
) -> None:
    send_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(1000))
    assert (
        check_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(1002))
        is Outcome.PENDING
    )
    assert store.next_poll_due() == 1006  # 2 s doubled after the first poll
    assert (
        check_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(1095))
        is Outcome.PENDING
    )
    assert store.next_poll_due() == 1100  # never past the deadline
    assert (
        check_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(1100))
        is Outcome.UNCONFIRMED
    )
    record = store.item("R", run)
    assert record is not None and record.state is State.UNCONFIRMED
    assert record.message == (
        "The invoice has been sent but it could not be confirmed within the time limit. Please "
        "check incomplete invoices in Heeros to see if it has been registered and its current "
        "status. Invoice ID in Heeros: H-1."
    )


def test_timing_doubles_and_caps() -> None:
    assert [TIMING.next_poll(n) for n in range(6)] == [2, 4, 8, 16, 30, 30]


def test_idempotency_key_is_per_tenant_and_invoice_not_per_run(export: Export) -> None:
    other = parse_export_config(CONFIG.replace('"00079"', '"00080"'), environ={}).export(
        "Heeros (API)"
    )
    assert idempotency_key(export, "1") == idempotency_key(export, "1")
    assert idempotency_key(export, "1") != idempotency_key(export, "2")
    assert idempotency_key(export, "1") != idempotency_key(other, "1")


def test_a_status_that_cannot_be_asked_is_asked_again_past_the_deadline(
    store: StatusStore,
    resolve,
    heeros: ScriptedHeeros,
    run: str,  # type: ignore[no-untyped-def]
) -> None:
    send_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(1000))
    heeros.status_answer = httpx.Response(503, json={})
    with pytest.raises(HeerosUnavailable):
        check_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(1101))
    record = store.item("R", run)
    assert record is not None and record.state is State.SENT
    assert store.next_poll_due() == 1103
    deadline_and_grace = 1100 + TIMING.grace_s
    assert (
        check_invoice(store, resolve, "R", run, timing=TIMING, clock=_clock(deadline_and_grace))
        is Outcome.UNCONFIRMED
    )


def test_a_send_held_back_by_the_limits_is_not_looked_up_before_the_next_try(
    store: StatusStore, export: Export, heeros: ScriptedHeeros, run: str
) -> None:
    from worker.errors import Throttled

    class Held:
        def __init__(self) -> None:
            self.finds = 0
            self.hold = True

        def send(self, *args: object, **kwargs: object) -> str:
            if self.hold:
                raise Throttled("29010-00079", 0.5)
            return "H-2"

        def status(self, invoice_id: str) -> object:
            raise AssertionError("not polled here")

        def find(self, invoice_number: str) -> None:
            self.finds += 1

    held = Held()
    resolve = lambda name: (export, held)  # noqa: E731
    with pytest.raises(Throttled):
        send_invoice(store, resolve, "R", run, timing=TIMING)  # type: ignore[arg-type]
    held.hold = False
    assert send_invoice(store, resolve, "R", run, timing=TIMING) is Outcome.SENT  # type: ignore[arg-type]
    assert held.finds == 0
