"""The tenants' backlogs and windows on fakeredis: a send is in one place at a time,
each start lets one more in, tenants are let out side by side."""

from __future__ import annotations

import fakeredis
import pytest

from worker.errors import InvoiceError
from worker.state.store import StatusStore
from worker.state.windows import Windows

RUN = "2026-11-0001"
OTHER = "2026-12-0001"


@pytest.fixture
def windows(store: StatusStore) -> Windows:
    return Windows.for_store(store)


def items(first: int, count: int) -> list[str]:
    return [f"{first + n}/0" for n in range(count)]


def test_a_window_lets_out_at_most_its_size_first_come_first(
    windows: Windows, fake_redis: fakeredis.FakeRedis
) -> None:
    windows.push(RUN, {"1-1": items(100001, 10)})
    assert windows.waiting([RUN]) == {RUN: 10}
    let_in = windows.release("1-1", size=4, now=100.0)
    assert let_in == [(RUN, item) for item in items(100001, 4)]
    assert windows.waiting([RUN]) == {RUN: 6}
    # Full: nothing more until one starts.
    assert windows.release("1-1", size=4, now=101.0) == []
    assert fake_redis.zscore("t:inflight", f"{RUN} 100001/0") == 100.0


def test_each_start_lets_the_next_of_its_tenant_in(windows: Windows) -> None:
    windows.push(RUN, {"1-1": items(100001, 5)})
    windows.release("1-1", size=2, now=1.0)
    assert windows.take([(RUN, "100001/0")], size=2, now=2.0) == [(RUN, "100003/0")]
    # A start of a send in no window (a small run's) lets nothing in.
    assert windows.take([(RUN, "100009/0")], size=2, now=2.0) == []
    assert windows.take([(RUN, "100002/0")], size=2, now=3.0) == [(RUN, "100004/0")]
    assert windows.take([(RUN, "100003/0")], size=2, now=3.0) == [(RUN, "100005/0")]
    assert windows.take([(RUN, "100004/0")], size=2, now=3.0) == []
    assert windows.tenants() == ["1-1"]
    assert windows.take([(RUN, "100005/0")], size=2, now=3.0) == []
    assert windows.tenants() == []
    assert windows.waiting([RUN]) == {RUN: 0}


def test_a_message_of_several_sends_lets_as_many_in(windows: Windows) -> None:
    windows.push(RUN, {"1-1": items(100001, 8)})
    windows.release("1-1", size=3, now=1.0)
    # A batch of three starts (one of them in no window): two places free up.
    started = [(RUN, "100001/0"), (RUN, "100002/0"), (RUN, "100099/0")]
    assert windows.take(started, size=3, now=2.0) == [(RUN, "100004/0"), (RUN, "100005/0")]
    # Started again (the message delivered twice): nothing more is let in.
    assert windows.take(started, size=3, now=3.0) == []
    assert windows.take([], size=3, now=3.0) == []
    assert windows.waiting([RUN]) == {RUN: 3}


def test_tenants_are_let_out_side_by_side(windows: Windows) -> None:
    windows.push(RUN, {"1-1": items(100001, 1000)})
    windows.push(OTHER, {"2-2": items(200001, 3)})
    assert windows.tenants() == ["1-1", "2-2"]
    first = windows.release("1-1", size=5, now=1.0)
    second = windows.release("2-2", size=5, now=1.0)
    # The second tenant's sends do not wait for the first's 1,000.
    assert len(first) == 5
    assert second == [(OTHER, item) for item in items(200001, 3)]


def test_a_stale_entry_gives_its_place_back(windows: Windows) -> None:
    windows.push(RUN, {"1-1": items(100001, 3)})
    assert len(windows.release("1-1", size=1, now=10.0)) == 1
    assert windows.release("1-1", size=1, now=20.0, stale_before=5.0) == []
    # Its message never started (lost): after stale_before passes it, the next goes in.
    assert windows.release("1-1", size=1, now=30.0, stale_before=15.0) == [(RUN, "100002/0")]
    # The lost one's start, should it come after all, lets nothing extra in.
    assert windows.take([(RUN, "100001/0")], size=1, now=31.0) == []


def test_a_tenant_must_be_a_name(windows: Windows) -> None:
    with pytest.raises(InvoiceError):
        windows.release("a b", size=1, now=1.0)
    with pytest.raises(InvoiceError):
        windows.push(RUN, {"x:y": ["100001/0"]})
