"""The dashboard's sessions and login limits: in Redis (fakeredis), and their in-process twin."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

import fakeredis
import pytest

from worker.errors import TransientError
from worker.state.keys import Keys
from worker.state.sessions import LocalSessionStore, LoginLimits, SessionRecords, SessionStore
from worker.state.store import StatusStore

LIMITS = LoginLimits(per_client=5, overall=50, window_s=60)
MakeRecords = Callable[[LoginLimits], SessionRecords]


@pytest.fixture(params=["redis", "local"])
def make(request: pytest.FixtureRequest, fake_redis: fakeredis.FakeRedis) -> MakeRecords:
    """Session records of either kind, with the limits given."""
    if request.param == "redis":
        return lambda limits: SessionStore(fake_redis, prefix="t", limits=limits)
    return lambda limits: LocalSessionStore(limits=limits)


# -- sessions -------------------------------------------------------------------------------


def test_a_session_is_read_back_until_it_is_revoked(make: MakeRecords) -> None:
    records = make(LIMITS)
    one = records.open({"csrf": "c-1", "expires": "99"}, ttl_s=3600)
    two = records.open({"csrf": "c-2", "expires": "99"}, ttl_s=3600)
    assert one != two and len(one) >= 40
    assert records.read(one) == {"csrf": "c-1", "expires": "99"}
    assert records.read(two) == {"csrf": "c-2", "expires": "99"}
    records.revoke(one)
    assert records.read(one) is None
    assert records.read(two) is not None
    records.revoke(one)  # twice: nothing to do, no error
    for unknown in ("", "x", one + "x", "é" * 50):
        assert records.read(unknown) is None


def test_a_session_ends_with_its_lifetime(make: MakeRecords) -> None:
    records = make(LIMITS)
    session = records.open({"csrf": "c"}, ttl_s=1)
    assert records.read(session) is not None
    time.sleep(1.2)
    assert records.read(session) is None


def test_redis_keeps_a_session_under_a_digest_of_its_id_for_its_lifetime(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    records = SessionStore(fake_redis, prefix="t")
    session = records.open({"csrf": "c"}, ttl_s=3600)
    (key,) = fake_redis.keys("t:session:*")
    assert key == Keys("t").session(hashlib.sha256(session.encode()).hexdigest())
    assert session not in key
    assert 3590 < fake_redis.ttl(key) <= 3600
    records.revoke(session)
    assert fake_redis.keys("*") == []


def test_the_session_store_shares_the_status_stores_redis_and_prefix(
    store: StatusStore, fake_redis: fakeredis.FakeRedis
) -> None:
    session = SessionStore.for_store(store).open({"csrf": "c"}, ttl_s=60)
    assert SessionStore(fake_redis, prefix="t").read(session) == {"csrf": "c"}
    assert fake_redis.keys("t:session:*")


# -- login attempts -------------------------------------------------------------------------


def test_a_client_is_held_back_after_its_attempts(make: MakeRecords) -> None:
    records = make(LIMITS)
    assert [records.attempt("10.0.0.1") for _ in range(5)] == [0] * 5
    wait = records.attempt("10.0.0.1")
    assert 0 < wait <= 60
    assert records.attempt("10.0.0.1") > 0
    assert records.attempt("10.0.0.2") == 0  # another client goes on


def test_past_the_overall_limit_every_client_is_held_back(make: MakeRecords) -> None:
    records = make(LoginLimits(per_client=5, overall=10, window_s=60))
    assert [records.attempt(f"10.0.0.{n}") for n in range(10)] == [0] * 10
    assert 0 < records.attempt("10.0.1.1") <= 60


def test_an_attempt_held_back_counts_for_nothing_overall(make: MakeRecords) -> None:
    records = make(LoginLimits(per_client=2, overall=5, window_s=60))
    for _ in range(50):
        records.attempt("10.0.0.1")  # one client hammering does not lock everyone out
    assert [records.attempt(f"10.0.0.{n}") for n in (2, 3, 4)] == [0, 0, 0]
    assert records.attempt("10.0.0.5") > 0


def test_a_right_token_clears_the_clients_attempts(make: MakeRecords) -> None:
    records = make(LIMITS)
    for _ in range(5):
        records.attempt("10.0.0.1")
    records.clear_attempts("10.0.0.1")
    assert records.attempt("10.0.0.1") == 0


def test_the_window_ends(make: MakeRecords) -> None:
    records = make(LoginLimits(per_client=1, overall=50, window_s=1))
    assert records.attempt("10.0.0.1") == 0
    assert records.attempt("10.0.0.1") == 1
    time.sleep(1.2)
    assert records.attempt("10.0.0.1") == 0


def test_parallel_attempts_are_each_counted(make: MakeRecords) -> None:
    records = make(LIMITS)
    waits: list[int] = []
    start = threading.Barrier(20)

    def guess() -> None:
        start.wait()
        waits.append(records.attempt("10.0.0.1"))

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(waits) == 20 and waits.count(0) == 5
    assert all(0 < wait <= 60 for wait in waits if wait)


def test_redis_keeps_the_attempts_in_expiring_counters(fake_redis: fakeredis.FakeRedis) -> None:
    records = SessionStore(fake_redis, prefix="t", limits=LIMITS)
    for _ in range(7):
        records.attempt("10.0.0.1")
    keys = Keys("t")
    assert fake_redis.get(keys.login_attempts("10.0.0.1")) == "5"
    assert fake_redis.get(keys.login_attempts_all) == "5"
    for key in (keys.login_attempts("10.0.0.1"), keys.login_attempts_all):
        assert 0 < fake_redis.ttl(key) <= 60
    records.clear_attempts("10.0.0.1")
    assert fake_redis.get(keys.login_attempts("10.0.0.1")) is None


def test_two_api_processes_share_sessions_and_limits(fake_redis: fakeredis.FakeRedis) -> None:
    first = SessionStore(fake_redis, prefix="t", limits=LIMITS)
    second = SessionStore(fake_redis, prefix="t", limits=LIMITS)
    session = first.open({"csrf": "c"}, ttl_s=60)
    assert second.read(session) == {"csrf": "c"}
    second.revoke(session)
    assert first.read(session) is None
    for records in (first, second, first, second, first):
        assert records.attempt("10.0.0.1") == 0
    assert second.attempt("10.0.0.1") > 0


def test_redis_down_is_a_transient_error() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    records = SessionStore(fakeredis.FakeRedis(server=server, decode_responses=True))
    for call in (
        lambda: records.open({"csrf": "c"}, ttl_s=60),
        lambda: records.read("x"),
        lambda: records.revoke("x"),
        lambda: records.attempt("10.0.0.1"),
        lambda: records.clear_attempts("10.0.0.1"),
    ):
        with pytest.raises(TransientError, match="session store"):
            call()
