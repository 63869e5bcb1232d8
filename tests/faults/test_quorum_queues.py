"""RabbitMQ with the exporter's quorum queues, end to end: real workers in a virtual host
of their own, a Heeros that answers 503 now and then, and the sends of a dead worker
taken back with their time left.

The workers run as separate pools, the polling pool started first on the new virtual
host: it declares and binds for native delayed delivery the queues it does not consume
as well. Every retry then waits for its countdown in RabbitMQ (in whole seconds: the
retries here start under a second), and so does a send taken back from a dead worker.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from producer.cli.localservices import LocalProcess, start_worker
from producer.operations.runs import start_run
from producer.operations.samples import sample_invoices
from tests.faults.conftest import Rig, audit, figures
from tests.faults.test_faults import _assert_whole
from tests.rabbitmq import rabbitmq_vhost, rabbitmqctl
from worker.celery.app import QUEUES, create_app
from worker.celery.broker import EXCHANGE
from worker.celery.queues import queue_lengths
from worker.celery.tasks import EXPRESS_QUEUE, POLL_QUEUE, SEND_QUEUE
from worker.state.keys import State, item_id
from worker.state.leases import Held, Leases, delivery_of

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def quorum_rig(rig: Rig) -> Iterator[tuple[Rig, str]]:
    """The rig on a new virtual host of the local RabbitMQ; its name."""
    with rabbitmq_vhost() as url:
        rig.use_broker(url)
        rig.env.pop("HEEROS_RABBITMQ_QUEUE_TYPE", None)  # the default: quorum
        try:
            yield rig, url.rsplit("/", 1)[1]
        finally:
            rig.stop_workers()


def _pool(rig: Rig, slot: str, queues: str) -> LocalProcess:
    process = start_worker(env=rig.env, name=f"w-{slot}", args=["-Q", queues], log_dir=rig.logs)
    rig.workers[slot] = process
    return process


def _listed(*args: str) -> list[list[str]]:
    listed: subprocess.CompletedProcess[str] = rabbitmqctl(*args)
    assert listed.returncode == 0, listed.stderr
    return [line.split("\t") for line in listed.stdout.splitlines() if "\t" in line]


def _logged(rig: Rig) -> str:
    return "\n".join(path.read_text(errors="replace") for path in sorted(rig.logs.glob("w-*.log")))


def test_quorum_queues_carry_retries_and_recovery_exactly_once(
    quorum_rig: tuple[Rig, str],
) -> None:
    rig, vhost = quorum_rig
    rig.knobs(latency_ms=20, fail_5xx=0.25, confirm_after_s=0.5)
    # The sweep stays out of it: the dead worker's sends come back through its lease only.
    rig.env.update(HEEROS_CONCURRENCY="8", HEEROS_SWEEP_AFTER_S="600")
    _pool(rig, "poll", POLL_QUEUE)
    _pool(rig, "send", f"{EXPRESS_QUEUE},{SEND_QUEUE}")

    types = {row[0]: row[1] for row in _listed("list_queues", "-q", "-p", vhost, "name", "type")}
    assert {name: types.get(name) for name in QUEUES} == {name: "quorum" for name in QUEUES}
    bindings = {
        (row[0], row[1], row[2])
        for row in _listed(
            "list_bindings", "-q", "-p", vhost, "source_name", "destination_name", "routing_key"
        )
    }
    for name in QUEUES:
        assert (EXCHANGE, name, name) in bindings
        assert (EXCHANGE, name, f"#.{name}") in bindings, "not bound for delayed delivery"

    # A run through a Heeros that answers 503 to a quarter of the sends.
    invoices = list(sample_invoices(300))
    began = time.monotonic()
    started = rig.close_period(invoices)
    summary = rig.wait_final(started.run, timeout=180)
    result = audit(rig, started.run, invoices)
    figures(
        rig, "quorum-503", result, invoices=len(invoices), seconds=time.monotonic() - began
    ).emit()
    _assert_whole(rig, result)
    assert summary is not None and summary.exported == len(invoices)
    assert result.summary is not None and result.summary.failed == 0
    assert rig.retries() > 20, "Heeros's 503s were not retried"

    # A worker that died holding sends, one of them a retry due in a few seconds: the
    # polling pool's recovery queues them again on the express queue, with their time
    # left, and the sending pool (stopped meanwhile, then back) sends each once.
    rig.workers.pop("send").stop()
    rig.knobs(fail_5xx=0.0)
    later = list(sample_invoices(6, period="2026-12", first=200001))
    app = create_app(rig.settings)
    try:
        second = start_run(app, rig.store(), rig.config, later, period="2026-12")
    finally:
        app.close()
    for queue in (EXPRESS_QUEUE, SEND_QUEUE):  # their only way now is the recovery
        purged = rabbitmqctl("purge_queue", "-p", vhost, queue)
        assert purged.returncode == 0, purged.stderr
    leases = Leases.for_store(rig.store())
    now = time.time()
    dead = "gone-host-1-deadbeef"
    retry_due = now + 15  # still ahead when the recovery comes (within 5 s)
    for index, invoice in enumerate(later):
        due = retry_due if index == 0 else 0.0
        held = Held(second.run, item_id(invoice.number, 0), failures=index % 2, due=due)
        leases.hold(dead, delivery_of(f"task-{index}", 0), held, now=now - 120)
    deadline = time.monotonic() + 60
    while leases.held(dead) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not leases.held(dead), "the dead worker's sends were not taken back"
    assert f"worker {dead} stopped beating: 6 of the 6 sends it held queued again" in _logged(rig)
    # Five at once; the retry when its time has come, held in RabbitMQ until then.
    checker = create_app(rig.settings)
    try:
        waiting = queue_lengths(checker, [EXPRESS_QUEUE, SEND_QUEUE])
        assert waiting == {EXPRESS_QUEUE: 5, SEND_QUEUE: 0}, waiting
        while waiting[EXPRESS_QUEUE] < 6 and time.time() < retry_due + 10:
            time.sleep(0.2)
            waiting = queue_lengths(checker, [EXPRESS_QUEUE, SEND_QUEUE])
        arrived = time.time()
    finally:
        checker.close()
    assert waiting == {EXPRESS_QUEUE: 6, SEND_QUEUE: 0}, "the delayed send did not arrive"
    assert retry_due - 0.5 <= arrived <= retry_due + 5, (arrived - retry_due, "s after due")
    _pool(rig, "send", f"{EXPRESS_QUEUE},{SEND_QUEUE}")
    rig.wait_final(second.run, timeout=60)
    again = audit(rig, second.run, later)
    assert again.problems() == {}, again.problems()
    assert again.summary is not None and again.summary.exported == len(later)
    assert all(record.state is State.EXPORTED for record in again.records.values())
    assert again.heeros_confirmed == len(invoices) + len(later)

    logged = _logged(rig)
    assert "countdown must be a positive number" not in logged
    assert "Failed to bind queue" not in logged
    assert "direct exchange" not in logged
    assert not rig.crashes
