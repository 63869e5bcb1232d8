"""The workers' leases: beats, the sends each holds, and taking a lapsed worker's back."""

from __future__ import annotations

import fakeredis
import pytest

from worker.errors import InvoiceError
from worker.state.leases import Held, Leases, delivery_of, worker_id
from worker.state.store import StatusStore

RUN = "2026-11-0001"
NOW = 100.0


@pytest.fixture
def leases(store: StatusStore) -> Leases:
    return Leases.for_store(store)


def test_a_worker_id_is_new_at_each_start_and_fits_a_key(store: StatusStore) -> None:
    first, second = worker_id(), worker_id()
    assert first != second
    assert store.keys.lease(first).startswith("t:lease:")


@pytest.mark.parametrize("name", ["", "a:b", "a b", "x" * 81])
def test_a_key_is_never_made_of_anything_but_a_worker_id(store: StatusStore, name: str) -> None:
    with pytest.raises(InvoiceError):
        store.keys.lease(name)


def test_held_sends_read_back_as_written(leases: Leases) -> None:
    leases.hold("w1", delivery_of("task-a", 0), Held(RUN, "100001/0"), now=NOW)
    leases.hold(
        "w1", delivery_of("task-a", 1), Held(RUN, "100001/0", failures=2, due=123.5), now=NOW
    )
    leases.hold("w2", delivery_of("task-b", 0), Held(RUN, "100002/0"), now=NOW)
    assert leases.held("w1") == {
        "task-a 0": Held(RUN, "100001/0", 0, 0.0),
        "task-a 1": Held(RUN, "100001/0", 2, 123.5),
    }
    leases.release("w1", "task-a 0")
    assert list(leases.held("w1")) == ["task-a 1"]
    assert list(leases.held("w2")) == ["task-b 0"]


def test_unreadable_entries_are_left_out(leases: Leases, fake_redis: fakeredis.FakeRedis) -> None:
    fake_redis.hset("t:lease:w1", mapping={"x 0": "only two", "y 0": "R I notanumber 0"})
    assert leases.held("w1") == {}


def test_a_hold_by_a_worker_that_has_not_beaten_yet_puts_it_among_the_workers(
    leases: Leases,
) -> None:
    leases.hold("new", "a 0", Held(RUN, "100001/0"), now=NOW)
    assert leases.lapsed(before=NOW + 1) == ["new"]
    leases.renew("new", NOW + 5)
    leases.hold("new", "b 0", Held(RUN, "100002/0"), now=NOW + 1)  # the beat stays
    assert leases.alive(since=NOW + 5) == ["new"]


def test_a_worker_lapses_when_its_beat_is_old(leases: Leases) -> None:
    leases.renew("old", 100.0)
    leases.renew("new", 200.0)
    assert leases.lapsed(before=150.0) == ["old"]
    assert leases.alive(since=150.0) == ["new"]
    leases.renew("old", 201.0)
    assert leases.lapsed(before=150.0) == []


def test_taking_back_strikes_what_was_queued_again_and_then_the_worker(leases: Leases) -> None:
    leases.renew("dead", 100.0)
    leases.hold("dead", "a 0", Held(RUN, "100001/0"), now=NOW)
    leases.hold("dead", "b 0", Held(RUN, "100002/0"), now=NOW)
    leases.take_back("dead", ["a 0"], before=150.0)
    assert list(leases.held("dead")) == ["b 0"]
    assert leases.lapsed(before=150.0) == ["dead"]  # still holds one
    leases.take_back("dead", ["b 0"], before=150.0)
    assert leases.held("dead") == {}
    assert leases.lapsed(before=150.0) == []


def test_a_worker_that_beats_again_keeps_its_place(leases: Leases) -> None:
    leases.renew("slow", 100.0)
    leases.hold("slow", "a 0", Held(RUN, "100001/0"), now=NOW)
    leases.renew("slow", 160.0)  # it beat again between the look and the taking back
    leases.take_back("slow", ["a 0"], before=150.0)
    assert leases.alive(since=150.0) == ["slow"]


def test_leaving_gives_the_lease_and_the_beat_up(
    leases: Leases, fake_redis: fakeredis.FakeRedis
) -> None:
    leases.renew("w1", 100.0)
    leases.hold("w1", "a 0", Held(RUN, "100001/0"), now=NOW)
    leases.leave("w1")
    assert fake_redis.keys("t:*") == []
