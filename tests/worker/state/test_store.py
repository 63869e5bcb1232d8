from __future__ import annotations

import time

import fakeredis
import pytest
import redis

from producer.operations.samples import sample_invoices
from worker.documents.keptcopy import compress_invoice
from worker.errors import InvoiceError, TransientError
from worker.state.keys import State, item_id
from worker.state.store import RunRecord, StatusStore


def _run(store: StatusStore, count: int = 3, exports: list[str] | None = None) -> list[str]:
    invoices = list(sample_invoices(count))
    items = [(item_id(i.number, 0), i.number, 0) for i in invoices]
    store.create_run(
        RunRecord(run="R1", period="2026-11", total=count, created=1.0, exports=exports or ["E"]),
        items,
        {i.number: compress_invoice(i) for i in invoices},
        chunk=2,
    )
    return [item for item, _, _ in items]


def test_run_ids_are_readable_and_sequential(store: StatusStore) -> None:
    assert store.next_run_id("2026-11") == "2026-11-0001"
    assert store.next_run_id("2026-11") == "2026-11-0002"
    assert store.next_run_id("2026-12") == "2026-12-0001"


def test_create_run_records_total_items_and_invoices(store: StatusStore) -> None:
    items = _run(store, 5)
    record = store.run_record("R1")
    assert record is not None
    assert (record.total, record.period, record.exports) == (5, "2026-11", ["E"])
    assert store.redis.scard(store.keys.state("R1", State.QUEUED)) == 5
    first = store.item("R1", items[0])
    assert first is not None
    assert (first.number, first.export, first.state, first.attempts) == (
        "100001",
        "E",
        State.QUEUED,
        0,
    )
    assert store.load_invoice("100003") == list(sample_invoices(5))[2]


def test_records_of_several_runs_in_one_read(store: StatusStore) -> None:
    items = _run(store)
    store.transition("R1", items[1], State.SENT, export_index=0, heeros_id="H2")
    records = store.records([("R1", items[1]), ("R2", items[0]), ("R1", items[0])])
    assert [r.state if r else None for r in records] == [State.SENT, None, State.QUEUED]
    assert records[0] is not None and records[0].heeros_id == "H2"
    assert store.records([]) == []


def test_transition_moves_between_sets_once(store: StatusStore) -> None:
    items = _run(store)
    assert store.transition("R1", items[0], State.SENDING, export_index=0)
    assert store.transition("R1", items[0], State.SENDING, export_index=0)
    assert store.transition("R1", items[0], State.SENT, export_index=0, heeros_id="H1")
    assert store.transition("R1", items[0], State.EXPORTED, export_index=0)
    # a late duplicate changes nothing once the item has ended
    assert not store.transition("R1", items[0], State.SENDING, export_index=0)
    assert not store.transition("R1", items[0], State.FAILED, export_index=0, kind="login")
    record = store.item("R1", items[0])
    assert record is not None
    assert (record.state, record.heeros_id, record.attempts) == (State.EXPORTED, "H1", 2)
    sizes = {s: store.redis.scard(store.keys.state("R1", s)) for s in State}
    assert sizes[State.EXPORTED] == 1
    assert sizes[State.QUEUED] == 2
    assert sum(sizes.values()) == 3
    assert store.redis.hget(store.keys.by_export("R1"), "0:exported") == "1"
    assert store.redis.hget(store.keys.by_export("R1"), "0:queued") == "2"


def test_an_item_missing_from_its_states_set_joins_the_next_one(store: StatusStore) -> None:
    items = _run(store)
    store.redis.srem(store.keys.state("R1", State.QUEUED), items[1])
    assert store.transition("R1", items[1], State.SENDING, export_index=0)
    assert store.redis.sismember(store.keys.state("R1", State.SENDING), items[1])
    assert store.redis.scard(store.keys.state("R1", State.QUEUED)) == 2


def test_state_never_goes_back(store: StatusStore) -> None:
    items = _run(store)
    store.transition("R1", items[0], State.SENT, export_index=0, heeros_id="H1")
    assert not store.transition("R1", items[0], State.SENDING, export_index=0)
    assert not store.transition("R1", items[0], State.QUEUED, export_index=0)
    record = store.item("R1", items[0])
    assert record is not None and record.state is State.SENT


def test_failure_kinds_count_once_and_requeue_moves_them_back(store: StatusStore) -> None:
    items = _run(store)
    store.transition("R1", items[0], State.FAILED, export_index=0, kind="validation", message="m")
    store.transition("R1", items[0], State.FAILED, export_index=0, kind="validation", message="m")
    assert store.redis.hget(store.keys.kinds("R1"), "validation") == "1"
    record = store.item("R1", items[0])
    assert record is not None and record.kind == "validation"
    assert store.transition("R1", items[0], State.QUEUED, export_index=0, force=True)
    assert store.redis.hget(store.keys.kinds("R1"), "validation") == "0"
    record = store.item("R1", items[0])
    assert record is not None and (record.state, record.kind) == (State.QUEUED, None)


def test_polls_are_claimed_with_a_lease(store: StatusStore) -> None:
    store.schedule_poll("R1", "1/0", 100.0)
    store.schedule_poll("R1", "2/0", 105.0)
    store.schedule_poll("R1", "3/0", 200.0)
    assert store.next_poll_due() == 100.0
    assert store.claim_polls(now=150.0, limit=10, lease_s=60) == [("R1", "1/0"), ("R1", "2/0")]
    # claimed polls are leased: not due again until the lease ends
    assert store.claim_polls(now=150.0, limit=10, lease_s=60) == []
    assert store.claim_polls(now=210.0, limit=1, lease_s=60) == [("R1", "3/0")]
    assert store.claim_polls(now=211.0, limit=5, lease_s=60) == [("R1", "1/0"), ("R1", "2/0")]
    store.drop_poll("R1", "2/0")
    assert store.polls_pending() == 2


def test_missing_or_damaged_invoice_copy_is_an_invoice_error(store: StatusStore) -> None:
    with pytest.raises(InvoiceError, match="invoice 404: no copy is kept"):
        store.load_invoice("404")
    store.redis.set(store.keys.payload("9"), "not zlib")
    with pytest.raises(InvoiceError, match="invoice 9: the kept copy is damaged"):
        store.load_invoice("9")


def test_invoice_copy_is_compact() -> None:
    invoice = next(iter(sample_invoices(1)))
    assert len(compress_invoice(invoice)) < 1200


def test_redis_failure_is_transient() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    broken = StatusStore(fakeredis.FakeRedis(server=server, decode_responses=True))
    with pytest.raises(TransientError, match="status store"):
        broken.item("R1", "1/0")


def test_unfinished_items_are_indexed_until_final(store: StatusStore) -> None:
    items = _run(store, 3)
    assert store.inflight_count() == 3
    store.transition("R1", items[0], State.SENDING, export_index=0)
    store.transition("R1", items[0], State.EXPORTED, export_index=0)
    assert store.inflight_count() == 2
    # created at time 1.0 and never touched since: stale
    stale = store.stale_items(older_than=100.0, limit=10)
    assert sorted(stale) == [("R1", items[1]), ("R1", items[2])]
    # taking them touches them, so the next sweep leaves them alone
    assert store.stale_items(older_than=100.0, limit=10) == []
    store.forget_inflight("R1", items[1])
    assert store.inflight_count() == 1


def _down() -> StatusStore:
    server = fakeredis.FakeServer()
    server.connected = False
    return StatusStore(fakeredis.FakeRedis(server=server, decode_responses=True), prefix="t")


def test_ping_answers_or_raises_transient(store: StatusStore) -> None:
    store.ping()
    with pytest.raises(TransientError, match="status store") as info:
        _down().ping()
    assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_a_beat_is_taken_once_per_interval_across_stores() -> None:
    server = fakeredis.FakeServer()
    one, other = (
        StatusStore(fakeredis.FakeRedis(server=server, decode_responses=True), prefix="t")
        for _ in range(2)
    )
    assert one.claim_beat("sweep", 0.2)
    assert not other.claim_beat("sweep", 0.2)
    assert not one.claim_beat("sweep", 0.2)
    assert other.claim_beat("poll", 0.2)  # beats are apart
    time.sleep(0.3)
    taken = [one.claim_beat("sweep", 0.2), other.claim_beat("sweep", 0.2)]
    assert taken == [True, False]


def test_a_beat_on_a_lost_redis_is_transient() -> None:
    with pytest.raises(TransientError):
        _down().claim_beat("sweep", 30)


def test_missing_invoices_are_those_without_a_kept_copy(store: StatusStore) -> None:
    _run(store, 2)
    assert store.missing_invoices(["100002", "404", "100001", "405"]) == ["404", "405"]
    assert store.missing_invoices([]) == []


def test_runs_in_progress_counts_unfinished_runs_and_polls(store: StatusStore) -> None:
    items = _run(store, 2)
    store.create_run(RunRecord(run="R2", period="P", total=1, created=2.0, exports=["E"]), [], {})
    store.transition("R2", "1/0", State.EXPORTED, export_index=0)
    store.schedule_poll("R1", items[0], 10.0)
    assert store.recent_run_ids(5) == ["R2", "R1"]
    assert store.runs_in_progress(limit=5) == (1, 1)
    assert store.runs_in_progress(limit=1) == (0, 1)
    for item in items:
        store.transition("R1", item, State.FAILED, export_index=0, kind="login")
    assert store.runs_in_progress(limit=5) == (0, 1)


def test_run_counts_read_the_counters(store: StatusStore) -> None:
    items = _run(store, 3, exports=["E", "F"])
    store.transition("R1", items[0], State.FAILED, export_index=0, kind="login")
    counts = store.run_counts("R1")
    assert counts is not None
    assert counts.record.exports == ["E", "F"]
    assert counts.states[State.QUEUED] == 2 and counts.states[State.FAILED] == 1
    assert list(counts.states) == list(State)
    assert counts.kinds == {"login": 1}
    assert counts.by_export == {(0, "queued"): 2, (0, "failed"): 1}
    assert store.run_counts("nope") is None


def test_reads_of_a_lost_redis_are_transient() -> None:
    down = _down()
    for read in (
        lambda: down.run_counts("R"),
        lambda: down.recent_run_ids(5),
        lambda: down.runs_in_progress(limit=5),
        lambda: down.scan_members("R", State.FAILED, cursor=0, count=5),
        lambda: down.missing_invoices(["1"]),
    ):
        with pytest.raises(TransientError):
            read()
