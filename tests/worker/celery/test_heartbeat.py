"""The heartbeat starts the sweep and the poll tasks, once across all workers."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest

from worker.celery.heartbeat import PollHeartbeat, beat
from worker.celery.tasks import POLL_QUEUE, POLL_TASK, SWEEP_TASK
from worker.state.metrics import Metrics
from worker.state.store import StatusStore


class RecordingApp:
    """A Celery app that records the tasks it is asked to send."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.error = error

    def send_task(self, name: str, *, queue: str) -> Any:
        if self.error is not None:
            raise self.error
        self.sent.append((name, queue))
        return None


SWEEP = (SWEEP_TASK, POLL_QUEUE)
POLL = (POLL_TASK, POLL_QUEUE)


def _store(server: fakeredis.FakeServer) -> StatusStore:
    return StatusStore(fakeredis.FakeRedis(server=server, decode_responses=True), prefix="t")


def test_the_sweep_is_sent_once_per_interval_across_workers() -> None:
    server = fakeredis.FakeServer()
    app = RecordingApp()
    workers = [_store(server), _store(server)]
    for _ in range(3):
        for store in workers:
            beat(app, store, sweep_every_s=0.2)
    assert app.sent == [SWEEP]
    time.sleep(0.3)
    for store in workers:
        beat(app, store, sweep_every_s=0.2)
    assert app.sent == [SWEEP, SWEEP]


def test_a_poll_is_sent_only_when_one_is_due(store: StatusStore) -> None:
    app = RecordingApp()
    beat(app, store)
    assert app.sent == [SWEEP]  # no poll waits at all
    store.schedule_poll("R", "1/0", time.time() + 60)
    beat(app, store, poll_every_s=0.05)
    assert app.sent == [SWEEP]  # one waits, not yet due
    store.schedule_poll("R", "2/0", time.time() - 1)
    beat(app, store, poll_every_s=0.05)
    assert app.sent == [SWEEP, POLL]


def test_a_due_poll_starts_one_task_per_heartbeat() -> None:
    server = fakeredis.FakeServer()
    app = RecordingApp()
    workers = [_store(server), _store(server)]
    workers[0].schedule_poll("R", "1/0", time.time() - 1)
    for store in workers * 2:
        beat(app, store, poll_every_s=0.1)
    assert app.sent.count(POLL) == 1
    time.sleep(0.15)
    for store in workers:
        beat(app, store, poll_every_s=0.1)
    assert app.sent.count(POLL) == 2
    assert app.sent.count(SWEEP) == 1


def test_the_beat_survives_a_lost_redis(caplog: pytest.LogCaptureFixture) -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    app = RecordingApp()
    beat(app, _store(server))
    assert app.sent == []
    assert "poll heartbeat skipped" in caplog.text
    server.connected = True
    beat(app, _store(server))  # and beats again once Redis is back
    assert app.sent == [SWEEP]


def test_the_beat_survives_a_lost_broker(store: StatusStore) -> None:
    beat(RecordingApp(ConnectionError("broker down")), store)


def test_the_bootstep_writes_the_metrics_and_beats(store: StatusStore) -> None:
    metrics = Metrics.for_store(store, flush_every_s=3600)
    metrics.count_retry("send")
    app = RecordingApp()
    app.heeros_runtime = SimpleNamespace(store=store, metrics=metrics)  # type: ignore[attr-defined]
    parent = SimpleNamespace(app=app)
    step = PollHeartbeat(parent)
    step.beat(parent)
    assert app.sent == [SWEEP]
    assert metrics.read().retries == {"send": 1}
    step.stop(parent)
