"""A SIGKILLed worker's sends move again within 30 s, on Redis and on RabbitMQ, with the
default recovery settings (no shortened visibility timeout, no early sweep).

Before each kill the test reads the victim's lease in the status store: the sends it
holds, running, waiting for a thread, or waiting for a retry. After the kill it
watches each of them until it moves again: ended, taken by a live worker, or further
on than at the kill. The seconds from the kill until the last one moves are that
kill's recovery time. The run then has to end with every invoice exported exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from producer.operations.samples import sample_invoices
from tests.faults.conftest import Rig, audit, figures
from tests.faults.test_faults import _assert_whole, _wait_for_progress
from tests.rabbitmq import rabbitmq_vhost
from worker.config.settings import Settings
from worker.state.keys import State
from worker.state.leases import Leases
from worker.state.store import ItemRecord

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(300)]

DEFAULTS = Settings.model_fields
RECOVERY_DEFAULTS = {
    "HEEROS_VISIBILITY_TIMEOUT_S": str(DEFAULTS["visibility_timeout_s"].default),
    "HEEROS_SWEEP_AFTER_S": str(DEFAULTS["sweep_after_s"].default),
}
"""The rig's workers shorten both for the other scenarios; these use the defaults."""

TARGET_S = 30.0


@dataclass
class Kill:
    """One kill: what the victim held, and how long until all of it moved again."""

    slot: str
    held: int
    recovered_s: float | None = None


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_rig(request: pytest.FixtureRequest, rig: Rig) -> Iterator[Rig]:
    rig.env.update(RECOVERY_DEFAULTS)
    rig.env.pop("HEEROS_RECOVER_AFTER_S", None)
    if request.param == "redis":
        yield rig
        return
    with rabbitmq_vhost() as url:
        rig.use_broker(url)
        try:
            yield rig
        finally:
            rig.stop_workers()


def _lease_of(leases: Leases, pid: int) -> tuple[str, set[tuple[str, str]]]:
    """The worker id of process ``pid`` and the sends it holds (none before it has
    received any, or beaten once)."""
    for worker in leases.alive(since=0):
        if f"-{pid}-" in worker:
            return worker, {(held.run, held.item) for held in leases.held(worker).values()}
    return f"-{pid}-", set()


def _held_elsewhere(leases: Leases, dead: str) -> set[tuple[str, str]]:
    return {
        (held.run, held.item)
        for worker in leases.alive(since=0)
        if worker != dead
        for held in leases.held(worker).values()
    }


def _moved(record: ItemRecord | None, before: ItemRecord | None, elsewhere: bool) -> bool:
    return (
        record is None
        or record.state.final
        or record.state is State.SENT
        or elsewhere
        or (before is not None and record.state.rank > before.state.rank)
    )


class Watch(threading.Thread):
    """Kills one worker after another, and times each kill's recovery, kills overlapping."""

    def __init__(self, rig: Rig) -> None:
        super().__init__(name="recovery-watch", daemon=True)
        self.rig = rig
        self.leases = Leases.for_store(rig.store())
        self.kills: list[Kill] = []
        self._waiting: list[tuple[Kill, str, float, dict[tuple[str, str], ItemRecord | None]]] = []
        self._lock = threading.Lock()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def kill(self, slot: str) -> Kill:
        """SIGKILL the worker of ``slot`` (a new one starts); its sends are watched."""
        store = self.rig.store()
        dead, held = _lease_of(self.leases, self.rig.workers[slot].popen.pid)
        at_kill = {pair: store.item(*pair) for pair in held}
        killed = time.monotonic()
        self.rig.kill_worker(slot)
        kill = Kill(slot=slot, held=len(held))
        with self._lock:
            self.kills.append(kill)
            self._waiting.append((kill, dead, killed, at_kill))
        return kill

    def run(self) -> None:
        store = self.rig.store()
        try:
            while not self.done.wait(0.25):
                with self._lock:
                    waiting = list(self._waiting)
                for kill, dead, killed, at_kill in waiting:
                    elsewhere = _held_elsewhere(self.leases, dead)
                    for pair in list(at_kill):
                        if _moved(store.item(*pair), at_kill[pair], pair in elsewhere):
                            del at_kill[pair]
                    if not at_kill:
                        kill.recovered_s = round(time.monotonic() - killed, 1)
                        with self._lock:
                            self._waiting.remove((kill, dead, killed, at_kill))
        except BaseException as error:  # reported by the test
            self.error = error

    def settled(self, timeout: float) -> None:
        """Wait until every kill's sends have moved again (or the timeout), then stop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._waiting:
                    break
            time.sleep(0.25)
        self.done.set()
        self.join(10)

    def line(self, broker: str) -> str:
        return f"RECOVERY broker={broker} " + " ".join(
            f"{k.slot}:held={k.held},recovered_s={k.recovered_s}" for k in self.kills
        )

    def slow(self) -> list[Kill]:
        return [k for k in self.kills if k.recovered_s is None or k.recovered_s > TARGET_S]


def _broker(rig: Rig) -> str:
    return "rabbitmq" if rig.broker_url else "redis"


def test_a_killed_workers_sends_move_again_within_30_s(broker_rig: Rig) -> None:
    rig = broker_rig
    # A slow Heeros that fails now and then: sends under way, waiting and retrying at
    # each kill.
    rig.knobs(latency_ms=100, fail_5xx=0.1, fail_429=0.05, confirm_after_s=0.5)
    rig.env.update(HEEROS_CONCURRENCY="8")
    rig.start_worker("w1")
    rig.start_worker("w2")
    invoices = list(sample_invoices(600))
    started = rig.close_period(invoices)
    began = time.monotonic()
    watch = Watch(rig)
    watch.start()
    for slot, share in (("w1", 0.25), ("w2", 0.5)):
        # Measured on the sends (items out of queued), so that each kill hits sends
        # under way: by half the run exported, the sends may all be done.
        _wait_for_progress(rig, started.run, share=share, state=State.QUEUED)
        watch.kill(slot)
    watch.settled(timeout=90)
    summary = rig.wait_final(started.run, timeout=120)
    seconds = time.monotonic() - began
    result = audit(rig, started.run, invoices)
    broker = _broker(rig)
    figures(rig, f"recovery-{broker}", result, invoices=len(invoices), seconds=seconds).emit()
    print(watch.line(broker))

    assert watch.error is None, f"watching the recovery failed: {watch.error!r}"
    assert all(kill.held > 0 for kill in watch.kills), f"a kill hit an idle worker: {watch.kills}"
    assert not watch.slow(), f"sends of a killed worker stuck after {TARGET_S} s: {watch.kills}"
    _assert_whole(rig, result)
    assert summary is not None and summary.exported == len(invoices)


def test_workers_killed_at_random_moments(broker_rig: Rig) -> None:
    rig = broker_rig
    # Few threads and a slow Heeros keep sends under way for most of the kills.
    rig.knobs(latency_ms=100)
    rig.env.update(HEEROS_CONCURRENCY="6")
    rig.start_worker("w1")
    rig.start_worker("w2")
    invoices = list(sample_invoices(1500))
    started = rig.close_period(invoices)
    began = time.monotonic()
    watch = Watch(rig)
    watch.start()
    chance = random.Random(20261130)
    queued_at_kill = []
    for _ in range(5):
        time.sleep(chance.uniform(1.0, 2.5))
        summary = rig.summary(started.run)
        queued_at_kill.append(summary.counts[State.QUEUED.value] if summary else -1)
        watch.kill(chance.choice(["w1", "w2"]))
    watch.settled(timeout=90)
    summary = rig.wait_final(started.run, timeout=240)
    seconds = time.monotonic() - began
    result = audit(rig, started.run, invoices)
    broker = _broker(rig)
    figures(rig, f"worker-sigkill-{broker}", result, invoices=len(invoices), seconds=seconds).emit()
    print(watch.line(broker))

    assert watch.error is None, f"watching the recovery failed: {watch.error!r}"
    assert rig.kills == 5, f"only {rig.kills} kills happened"
    # Most kills hit the run while sends were still waiting.
    assert sum(1 for queued in queued_at_kill if queued > 0) >= 3, queued_at_kill
    assert not watch.slow(), f"sends of a killed worker stuck after {TARGET_S} s: {watch.kills}"
    _assert_whole(rig, result)
    assert summary is not None and summary.exported == 1500
