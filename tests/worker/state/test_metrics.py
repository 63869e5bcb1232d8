"""The metrics recorded in Redis: one round trip a call, shared by every worker."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import redis

from worker.errors import TransientError
from worker.state.metrics import BUCKETS, Metrics, bucket_label
from worker.state.store import StatusStore


@pytest.fixture
def metrics(fake_redis: fakeredis.FakeRedis) -> Metrics:
    return Metrics(fake_redis, prefix="t")


def test_buckets_are_fixed_and_bounded() -> None:
    assert BUCKETS[0] == 0.05 and BUCKETS[-1] == 60
    assert list(BUCKETS) == sorted(BUCKETS)
    assert bucket_label(0.0) == "0.05"
    assert bucket_label(0.05) == "0.05"
    assert bucket_label(0.051) == "0.1"
    assert bucket_label(60) == "60"
    assert bucket_label(61) == "+Inf"


def test_final_states_are_counted_per_export_and_state(metrics: Metrics) -> None:
    for _ in range(3):
        metrics.count_final("Heeros (API)", "exported")
    metrics.count_final("Heeros (API)", "failed")
    metrics.count_final("Heeros (strict)", "failed")
    assert metrics.read().invoices == {
        ("Heeros (API)", "exported"): 3,
        ("Heeros (API)", "failed"): 1,
        ("Heeros (strict)", "failed"): 1,
    }


def test_histograms_are_cumulative_when_read(metrics: Metrics) -> None:
    for seconds in (0.01, 0.2, 0.2, 3.0, 120.0):
        metrics.observe_send("A", seconds)
    metrics.observe_confirmation("A", 1.5)
    snapshot = metrics.read()
    send = snapshot.send["A"]
    assert send.count == 5
    assert send.total == pytest.approx(123.41)
    rows = dict(send.cumulative())
    assert rows["0.05"] == 1
    assert rows["0.1"] == 1
    assert rows["0.25"] == 3
    assert rows["2.5"] == 3
    assert rows["5"] == 4
    assert rows["60"] == 4
    assert rows["+Inf"] == 5
    assert list(rows) == [*(f"{b:g}" for b in BUCKETS), "+Inf"]
    assert snapshot.confirmation["A"].count == 1
    assert snapshot.confirmation["A"].total == pytest.approx(1.5)


def test_a_negative_latency_counts_as_zero(metrics: Metrics) -> None:
    metrics.observe_send("A", -1.0)
    send = metrics.read().send["A"]
    assert send.counts[0] == 1 and send.total == 0


def test_errors_and_retries(metrics: Metrics) -> None:
    metrics.count_error("HTTP_503")
    metrics.count_error("HTTP_503")
    metrics.count_error("VALIDATION")
    metrics.count_retry("send")
    metrics.count_retry("poll")
    metrics.count_retry("send")
    snapshot = metrics.read()
    assert snapshot.errors == {"HTTP_503": 2, "VALIDATION": 1}
    assert snapshot.retries == {"send": 2, "poll": 1}


def test_every_worker_adds_to_the_same_figures(fake_redis: fakeredis.FakeRedis) -> None:
    first, second = Metrics(fake_redis, prefix="t"), Metrics(fake_redis, prefix="t")
    first.count_final("A", "exported")
    second.count_final("A", "exported")
    assert first.read().invoices == {("A", "exported"): 2}
    assert Metrics(fake_redis, prefix="other").read().invoices == {}


def test_keys_live_under_the_prefix(metrics: Metrics, fake_redis: fakeredis.FakeRedis) -> None:
    metrics.count_final("A", "exported")
    metrics.observe_send("A", 1)
    metrics.observe_confirmation("A", 1)
    metrics.count_error("X")
    metrics.count_retry("send")
    assert sorted(fake_redis.keys("*")) == [
        "t:metrics:confirmation",
        "t:metrics:errors",
        "t:metrics:invoices",
        "t:metrics:retries",
        "t:metrics:send",
    ]


class _Counting(fakeredis.FakeRedis):
    """Counts the round trips (pipelines executed and single commands)."""

    trips = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        type(self).trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        original = pipe.execute

        def execute(raise_on_error: bool = True) -> Any:
            type(self).trips += 1
            return original(raise_on_error)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


def test_each_call_is_one_round_trip() -> None:
    client = _Counting(decode_responses=True)
    metrics = Metrics(client, prefix="t")
    calls = [
        lambda: metrics.observe_send("A", 0.3),
        lambda: metrics.observe_confirmation("A", 2.0),
        lambda: metrics.count_final("A", "exported"),
        lambda: metrics.count_error("LOGIN"),
        lambda: metrics.count_retry("send"),
        metrics.read,
    ]
    for call in calls:
        before = _Counting.trips
        call()
        assert _Counting.trips - before == 1


def test_a_redis_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Down(fakeredis.FakeRedis):
        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            raise redis.ConnectionError("connection refused")

    metrics = Metrics(Down(decode_responses=True), prefix="t")
    metrics.count_final("A", "exported")
    metrics.observe_send("A", 1.0)
    assert "metrics not written yet: Redis failed" in caplog.text


def test_counts_wait_in_the_process_until_a_flush(fake_redis: fakeredis.FakeRedis) -> None:
    metrics = Metrics(fake_redis, prefix="t", flush_every_s=3600)
    metrics.count_final("A", "exported")
    metrics.count_final("A", "exported")
    metrics.observe_send("A", 0.2)
    assert metrics.read().invoices == {}
    metrics.flush()
    snapshot = metrics.read()
    assert snapshot.invoices == {("A", "exported"): 2}
    assert snapshot.send["A"].count == 1 and snapshot.send["A"].total == pytest.approx(0.2)


def test_counts_kept_through_a_failed_flush(fake_redis: fakeredis.FakeRedis) -> None:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    metrics = Metrics(client, prefix="t", flush_every_s=3600)
    metrics.count_retry("send")
    server.connected = False
    metrics.flush()
    server.connected = True
    metrics.flush()
    assert metrics.read().retries == {"send": 1}


def test_a_read_from_a_lost_redis_is_transient() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    metrics = Metrics(fakeredis.FakeRedis(server=server, decode_responses=True), prefix="t")
    with pytest.raises(TransientError, match="metrics store") as info:
        metrics.read()
    assert isinstance(info.value.__cause__, redis.ConnectionError)


def test_a_failed_read_is_transient(metrics: Metrics, fake_redis: fakeredis.FakeRedis) -> None:
    fake_redis.set("t:metrics:errors", "not a hash")
    with pytest.raises(TransientError, match="metrics store") as info:
        metrics.read()
    assert isinstance(info.value.__cause__, redis.ResponseError)


def test_metrics_of_a_store_live_under_its_prefix(fake_redis: fakeredis.FakeRedis) -> None:
    store = StatusStore(fake_redis, prefix="s")
    Metrics.for_store(store).count_retry("poll")
    assert fake_redis.hgetall("s:metrics:retries") == {"poll": "1"}
    assert Metrics(fake_redis, prefix="s").read().retries == {"poll": 1}
