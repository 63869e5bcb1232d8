from __future__ import annotations

import fakeredis
import pytest
import redis

from worker.config.starttext import SendOptions
from worker.errors import HeerosRateLimited, Throttled, TransientError
from worker.heeros.remote import RemoteState, RemoteStatus
from worker.state.keys import Keys
from worker.state.limiter import LimitedHeeros, Limits, TenantLimiter
from worker.state.store import StatusStore


def _limiter(redis: fakeredis.FakeRedis, **limits: float) -> TenantLimiter:
    return TenantLimiter(redis, keys=Keys("t"), limits=Limits(**limits))  # type: ignore[arg-type]


def test_concurrency_is_shared_and_released(fake_redis: fakeredis.FakeRedis) -> None:
    one = _limiter(fake_redis, concurrent=2)
    other = _limiter(fake_redis, concurrent=2)  # another worker process, same Redis
    with one.permit("A"), other.permit("A"):
        with pytest.raises(Throttled) as info, one.permit("A"):
            pass
        assert info.value.tenant == "A"
        with other.permit("B"):  # tenants are apart
            pass
    with one.permit("A"), one.permit("A"):
        pass


def test_rate_allows_a_burst_then_holds_back(fake_redis: fakeredis.FakeRedis) -> None:
    limiter = _limiter(fake_redis, per_second=10, burst=3)
    admitted = 0
    waits = []
    for _ in range(10):
        try:
            with limiter.permit("A"):
                admitted += 1
        except Throttled as throttled:
            waits.append(throttled.retry_after)
    assert admitted == 4  # the request itself and a burst of three
    assert waits and all(0 < wait <= 0.5 for wait in waits)


def test_a_batch_gets_as_many_places_as_the_limits_allow(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    limiter = _limiter(fake_redis, per_second=10, burst=3, concurrent=3)
    with limiter.permits("A", 5) as first:
        # three places in flight at most, though the rate would allow four
        assert (first.count, first.wait) == (3, 0.05)
        assert fake_redis.zcard("t:limit:A:inflight") == 3
        with limiter.permits("A", 2) as none:
            assert none.count == 0
    assert fake_redis.zcard("t:limit:A:inflight") == 0  # given back, all at once
    with limiter.permits("A", 5) as second:
        # the rate's burst: one of four left (three went to the first batch)
        assert second.count == 1
    with limiter.permits("A", 1) as third:
        assert third.count == 0 and 0 < third.wait <= 0.1
    with limiter.permits("A", 0) as nothing:
        assert nothing.count == 0


def test_a_batch_of_a_paused_tenant_gets_nothing(fake_redis: fakeredis.FakeRedis) -> None:
    limiter = _limiter(fake_redis)
    limiter.pause("A", 10)
    with limiter.permits("A", 5) as admitted:
        assert admitted.count == 0 and 9 < admitted.wait <= 10


def test_requests_whose_places_are_held_skip_the_limiter(
    fake_redis: fakeredis.FakeRedis,
) -> None:
    limiter = _limiter(fake_redis, concurrent=1)
    answering = Answering()
    with limiter.permits("A", 1) as admitted:
        assert admitted.count == 1
        with pytest.raises(Throttled):
            LimitedHeeros(answering, limiter, "A").status("H")
        held = LimitedHeeros(answering, limiter, "A").with_places_held()
        held.status("H")
        held.status("H")
    assert answering.calls == 2
    refused = LimitedHeeros(Answering(HeerosRateLimited(30)), limiter, "A").with_places_held()
    with pytest.raises(HeerosRateLimited):
        refused.send("1", b"", SendOptions(), "k")
    with pytest.raises(Throttled):  # a 429 still pauses the tenant
        LimitedHeeros(answering, limiter, "A").status("H")


def test_no_limits_admit_everything(fake_redis: fakeredis.FakeRedis) -> None:
    limiter = _limiter(fake_redis)
    for _ in range(100):
        with limiter.permit("A"):
            pass


class Answering:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls = 0

    def send(
        self,
        invoice_number: str,
        document: bytes,
        options: SendOptions,
        idempotency_key: str,
        *,
        encoding: str = "UTF-8",
    ) -> str:
        self.calls += 1
        if self.error:
            raise self.error
        return "H"

    def status(self, invoice_id: str) -> RemoteStatus:
        self.calls += 1
        return RemoteStatus(invoice_id, RemoteState.PENDING, "RECEIVED")

    def find(self, invoice_number: str) -> RemoteStatus | None:
        self.calls += 1
        return None


def test_a_429_pauses_the_whole_tenant(fake_redis: fakeredis.FakeRedis) -> None:
    limiter = _limiter(fake_redis)
    refused = LimitedHeeros(Answering(HeerosRateLimited(30)), limiter, "A")
    with pytest.raises(HeerosRateLimited):
        refused.send("1", b"", SendOptions(), "k")
    other = Answering()
    elsewhere = LimitedHeeros(other, _limiter(fake_redis), "A")
    with pytest.raises(Throttled) as info:
        elsewhere.status("H")
    assert 29 < info.value.retry_after <= 30
    assert other.calls == 0  # nothing left for Heeros while the tenant is paused
    assert LimitedHeeros(other, limiter, "B").find("1") is None


def test_permits_are_leased(fake_redis: fakeredis.FakeRedis) -> None:
    limiter = _limiter(fake_redis, concurrent=1, lease_s=-1)  # a lease already over
    with limiter.permit("A"), limiter.permit("A"):
        pass


def test_a_lost_redis_is_transient_not_raw() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    limiter = _limiter(fakeredis.FakeRedis(server=server, decode_responses=True), concurrent=1)
    with pytest.raises(TransientError, match="request limiter") as info, limiter.permit("A"):
        pass
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    with pytest.raises(TransientError, match="request limiter"):
        limiter.pause("A", 5)


def test_a_limiter_of_a_store_keeps_its_keys(fake_redis: fakeredis.FakeRedis) -> None:
    limiter = TenantLimiter.for_store(
        StatusStore(fake_redis, prefix="t"), limits=Limits(per_second=5, concurrent=1)
    )
    with limiter.permit("OFF-CUST"):
        limiter.pause("OFF-CUST", 1)
        assert sorted(fake_redis.keys("*")) == [
            "t:limit:OFF-CUST:inflight",
            "t:limit:OFF-CUST:pause",
            "t:limit:OFF-CUST:rate",
        ]
    assert not fake_redis.exists("t:limit:OFF-CUST:inflight")  # the place is given back
