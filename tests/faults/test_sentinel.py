"""A Redis Sentinel failover in the middle of a run, with the last writes lost.

The status store and the broker both reach Redis through three sentinels. A third
of the way into a run the replica is cut off from the primary (stopped, its
replication link closed by the primary), the primary keeps acknowledging the
workers' writes for half a second, and is then SIGKILLed: the sentinels promote a
replica that never saw those writes, as asynchronous replication allows. Items go
back to an earlier state, tasks taken reappear in the queue, acknowledgements and
published retries are gone.

The run must still end with every invoice exported, each stored once by Heeros
(the sandbox's read-out), and nothing left queued, sending or sent: an item taken
up again in ``sending`` asks Heeros before sending, a repeated send carries the same
idempotency key, and the sweep queues again what no task holds.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pytest
import redis

from producer.operations.samples import sample_invoices
from tests.faults.conftest import Audit, Figures, SentinelRig, Supervisor, audit, figures
from worker.state.keys import item_id
from worker.state.store import StatusStore

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(240)]

INVOICES = 360
LATENCY_MS = 100
"""The sandbox's answer time: sends are still under way when the primary dies."""
CONCURRENCY = "8"
CUT_OFF_S = 0.5
"""How long the primary takes writes its replica never gets, before it is killed."""
FINAL_WITHIN_S = 75.0
"""A lost task comes back through the sweep (``HEEROS_SWEEP_AFTER_S`` 20 s, every 30 s)."""


@dataclass
class FailoverFigures(Figures):
    """:class:`Figures` with what the failover did."""

    failover_s: float = 0.0
    """From the SIGKILL until the sentinels name the replica the primary."""
    completion_s: float = 0.0
    """From the SIGKILL until every invoice of the run is final."""
    behind_bytes: int = 0
    """Replication stream the primary had acknowledged and the replica never got."""
    rolled_back: int = 0
    """Items whose state on the promoted replica was behind the old primary's."""
    found_first: int = 0
    """Items taken up again in ``sending`` that Heeros already held, so nothing was sent."""
    refused_twice: int = 0
    """Sends Heeros answered "already received" (409): the idempotency key at work."""


@dataclass
class Cut:
    killed_at: float
    behind_bytes: int
    rolled_back: int


def _ranks(client: redis.Redis, rig: SentinelRig, run: str, items: Sequence[str]) -> dict[str, int]:
    store = StatusStore(client, prefix=rig.settings.key_prefix)
    return {record.number: record.state.rank for record in store.items(run, list(items))}


def _cut_off_and_kill(rig: SentinelRig, run: str, items: Sequence[str]) -> Cut:
    """Cut the replica off, let the primary take writes for :data:`CUT_OFF_S`, SIGKILL it.

    The replica is read before the sentinels promote it (``down-after-milliseconds``
    at the soonest), so the comparison with the primary's last read shows what the
    failover took back; at least that much, as the primary took writes until it died.
    """
    assert rig.replica is not None
    primary, replica = rig.node(rig.redis_port), rig.node(rig.replica_port)
    try:
        rig.replica.popen.send_signal(signal.SIGSTOP)
        try:
            primary.client_kill_filter(_type="replica")
            time.sleep(CUT_OFF_S)
            before = _ranks(primary, rig, run, items)
            acknowledged = int(primary.info("replication")["master_repl_offset"])
            rig.redis.kill()
            killed_at = time.monotonic()
        finally:
            rig.replica.popen.send_signal(signal.SIGCONT)
        # The replica reads what reached it before the cut, then finds its primary gone.
        offset = -1
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            link = replica.info("replication")
            if link["role"] != "slave":
                break  # promoted already: what it holds now is no longer what it got
            stable = offset == int(link["master_repl_offset"])
            offset = int(link["master_repl_offset"])
            if link["master_link_status"] == "down" and stable:
                break
            time.sleep(0.05)
        after = _ranks(replica, rig, run, items)
    finally:
        primary.close()
        replica.close()
    return Cut(
        killed_at=killed_at,
        behind_bytes=(acknowledged - offset) if offset >= 0 else 0,
        rolled_back=sum(1 for number, rank in before.items() if after.get(number, -1) < rank),
    )


def _found_first(rig: SentinelRig) -> int:
    """How many attempts found their invoice in Heeros before sending, from the workers' logs."""
    return sum(
        1
        for path in rig.logs.glob("w*.log")
        for line in path.read_text(errors="replace").splitlines()
        if "logger=worker.pipeline" in line and " already in Heeros as " in line
    )


def _wait_exported(rig: SentinelRig, run: str, *, share: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = rig.summary(run)
        if summary is not None and summary.exported >= share * summary.total:
            return
        time.sleep(0.1)
    pytest.fail(f"run {run} did not reach {share:.0%} exported in {timeout:g} s")


def _assert_whole(rig: SentinelRig, result: Audit) -> None:
    problems = result.problems()
    summary = result.summary
    assert summary is not None, "the run's figures cannot be read"
    assert not result.not_final and summary.in_progress == 0, (
        f"{summary.in_progress} invoices never reached a final state: {problems}\n"
        f"{rig.worker_tails()}"
    )
    assert not result.duplicated, f"Heeros stored invoices twice: {problems}"
    assert not result.missing, f"invoices never reached Heeros: {problems}"
    assert not result.wrongly_exported and not result.unrecorded, (
        f"the run and Heeros disagree: {problems}"
    )
    assert summary.exported == result.heeros_confirmed == INVOICES, summary.as_dict()


def test_a_sentinel_failover_that_loses_writes_loses_and_doubles_no_invoice(
    sentinel_rig: SentinelRig,
) -> None:
    rig = sentinel_rig
    rig.knobs(latency_ms=LATENCY_MS)
    rig.env.update(HEEROS_CONCURRENCY=CONCURRENCY)
    rig.start_worker("w1")
    rig.start_worker("w2")
    supervisor = Supervisor(rig)
    supervisor.start()
    invoices = list(sample_invoices(INVOICES))
    items = [item_id(invoice.number, 0) for invoice in invoices]
    started = rig.close_period(invoices)
    began = time.monotonic()
    _wait_exported(rig, started.run, share=1 / 3)
    cut = _cut_off_and_kill(rig, started.run, items)
    promoted = rig.wait_promoted(timeout=30)
    failover_s = time.monotonic() - cut.killed_at
    rig.wait_final(started.run, timeout=FINAL_WITHIN_S)
    finished = time.monotonic()
    supervisor.stop()
    result = audit(rig, started.run, invoices)
    answers = [entry.get("answers", {}) for entry in result.received.values()]
    shown = FailoverFigures(
        **asdict(
            figures(rig, "sentinel-failover", result, invoices=INVOICES, seconds=finished - began)
        ),
        failover_s=failover_s,
        completion_s=finished - cut.killed_at,
        behind_bytes=cut.behind_bytes,
        rolled_back=cut.rolled_back,
        found_first=_found_first(rig),
        refused_twice=sum(int(a.get("409", 0)) for a in answers),
    )
    shown.emit()

    assert promoted, "the sentinels did not promote the replica"
    assert cut.behind_bytes > 0, "the failover lost no write: the scenario tested nothing"
    assert supervisor.error is None, f"starting a worker again failed: {supervisor.error!r}"
    _assert_whole(rig, result)
    assert not rig.crashes, "workers must follow a failover, but exited: " + "; ".join(rig.crashes)
