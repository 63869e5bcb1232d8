"""Fault injection with real processes: killed workers, a restarted Redis, a failing Heeros.

Every scenario ends the same way: every invoice in a final state, the sandbox's
read-out showing each invoice stored at most once (exactly once where it should
be in Heeros), and the run's exported figure equal to the sandbox's count of
invoices it holds as confirmed. ``pytest -m faults`` runs this suite alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from producer.operations.samples import sample_invoices
from tests.faults.conftest import Audit, Rig, Supervisor, audit, figures
from worker.errors import MESSAGE_LOGIN_FAILED, MESSAGE_SEND_REFUSED
from worker.state.keys import State

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(420)]

SEND_REFUSED_PREFIX = MESSAGE_SEND_REFUSED.split("{0}")[0]


def _wait_for_progress(
    rig: Rig, run: str, *, share: float, state: State = State.EXPORTED, timeout: float = 120
) -> None:
    """Wait until ``share`` of the run is exported, or has left ``state`` (queued).

    The fault then hits a run in motion.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = rig.summary(run)
        if summary is not None:
            done = (
                summary.exported
                if state is State.EXPORTED
                else summary.total - summary.counts[state.value]
            )
            if done >= share * summary.total:
                return
        time.sleep(0.2)
    pytest.fail(f"run {run} did not reach {share:.0%} ({state.value}) in {timeout} s")


def _wait_until_sent_or_final(rig: Rig, run: str, *, timeout: float) -> int:
    """Wait until no item is queued or sending; the number still so at the timeout."""
    deadline = time.monotonic() + timeout
    unsent = -1
    while time.monotonic() < deadline:
        summary = rig.summary(run)
        if summary is not None:
            unsent = summary.counts[State.QUEUED.value] + summary.counts[State.SENDING.value]
            if unsent == 0:
                return 0
        time.sleep(0.5)
    return unsent


def _assert_whole(rig: Rig, result: Audit, *, expect_in_heeros: bool = True) -> None:
    """The end every scenario must reach."""
    problems = result.problems()
    summary = result.summary
    assert summary is not None, "the run's figures cannot be read"
    assert not result.not_final and summary.in_progress == 0, (
        f"{summary.in_progress} invoices never reached a final state: {problems}\n"
        f"{rig.worker_tails()}"
    )
    assert not result.duplicated, f"Heeros stored invoices twice: {problems}"
    if expect_in_heeros:
        assert not result.missing, f"invoices never reached Heeros: {problems}"
    assert not result.wrongly_exported and not result.unrecorded, (
        f"the run and Heeros disagree: {problems}"
    )
    assert summary.exported == result.heeros_confirmed, (
        f"the run counts {summary.exported} exported, Heeros holds {result.heeros_confirmed}"
    )


# While sends are under way, a send task meets the restart; while only polls are left, a
# poll task (which finishes at once) meets it and acknowledges into a broker that is down.
PHASES = {
    "sending": {"latency_ms": 150, "HEEROS_CONCURRENCY": "8"},
    "polling": {"latency_ms": 20, "HEEROS_CONCURRENCY": "16"},
}


@pytest.mark.parametrize("phase", ["sending", "polling"])
@pytest.mark.parametrize("signal", ["sigterm", "sigkill"])
def test_redis_restarted_mid_run(rig: Rig, signal: str, phase: str) -> None:
    rig.knobs(latency_ms=PHASES[phase]["latency_ms"])
    rig.env.update(HEEROS_CONCURRENCY=str(PHASES[phase]["HEEROS_CONCURRENCY"]))
    rig.start_worker("w1")
    rig.start_worker("w2")
    # A worker that exits is started again, as systemd or Kubernetes would, so that the
    # scenario still shows whether any invoice is lost; the exit itself fails the test.
    supervisor = Supervisor(rig)
    supervisor.start()
    invoices = list(sample_invoices(600))
    started = rig.close_period(invoices)
    began = time.monotonic()
    if phase == "sending":
        _wait_for_progress(rig, started.run, share=0.3, state=State.QUEUED)
    else:
        _wait_for_progress(rig, started.run, share=1.0, state=State.QUEUED)
        _wait_for_progress(rig, started.run, share=0.3)
    rig.restart_redis(hard=signal == "sigkill", down_s=3.0)
    summary = rig.wait_final(started.run, timeout=180)
    seconds = time.monotonic() - began
    supervisor.stop()
    result = audit(rig, started.run, invoices)
    scenario = f"redis-restart-{signal}-{phase}"
    figures(rig, scenario, result, invoices=len(invoices), seconds=seconds).emit()

    assert supervisor.error is None, f"starting a worker again failed: {supervisor.error!r}"
    _assert_whole(rig, result)
    assert summary is not None and summary.exported == 600
    assert not rig.crashes, "workers must reconnect to a restarted Redis, but exited: " + "; ".join(
        rig.crashes
    )


# Runs in a process of its own that has imported the worker's modules but built no
# document yet; each attempt forks a child that, like a worker taking its first tasks,
# builds Finvoice documents in 32 threads at once, as a task does (the kept copy read
# into a tree, transformed, validated), checks each against the document the parent
# built alone, and reports what failed.
FIRST_DOCUMENTS = """
import json, os, random, sys, threading, time
from producer.operations.samples import sample_invoices
from worker.documents.finvoice import render_document, render_finvoice
from worker.documents.keptcopy import compress_invoice, invoice_source

THREADS = 32
invoices = list(sample_invoices(THREADS))
blobs = [compress_invoice(invoice) for invoice in invoices]

def child(write):
    errors = []
    gate = threading.Barrier(THREADS)
    def thread(k):
        gate.wait()
        time.sleep(random.uniform(0, 0.005))
        try:
            for round in range(3):
                number = invoices[k].number
                document = render_document(invoice_source(blobs[k], number=number), number)
                if document != expected[k]:
                    errors.append(f"invoice {number}: a different document in round {round}")
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}"[:300])
    threads = [threading.Thread(target=thread, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.write(write, json.dumps(errors).encode())
    os._exit(0)

def alone():
    # Built in a thread of its own, so the parent process itself builds nothing.
    built = []
    worker = threading.Thread(target=lambda: built.extend(render_finvoice(i) for i in invoices))
    worker.start()
    worker.join()
    return built

broken, attempt, began = [], 0, time.monotonic()
attempts, seconds = int(sys.argv[1]), float(sys.argv[2])
expected = []
while attempt < attempts and time.monotonic() - began < seconds and not broken:
    attempt += 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        expected = alone()
        child(write)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    errors = json.loads(data) if data else []
    if status or errors:
        broken.append({"attempt": attempt, "status": status, "failed": len(errors),
                       "first": errors[0] if errors else ""})
print(json.dumps({"attempts": attempt, "seconds": round(time.monotonic() - began, 1),
                  "broken": broken}))
"""


def test_a_fresh_process_builds_its_first_documents_in_many_threads() -> None:
    """What a worker does when it starts (or starts again) while sends wait: each of its
    threads takes a task at once and builds a Finvoice document from the kept copy, the
    first ones in that process.

    Each attempt is a fresh process (a fork that has built no document yet in the
    threads that run tasks). A failure here depends on the threads' timing: it showed
    in one to a few attempts of every hundred, so up to 200 are made (for at most 60 s),
    stopping at the first that breaks.
    """
    child = subprocess.run(
        [sys.executable, "-c", FIRST_DOCUMENTS, "200", "60"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).parents[2],
    )
    assert child.returncode == 0, child.stderr[-2000:]
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"FIRST-DOCUMENTS {json.dumps(outcome)}")
    assert not outcome["broken"], (
        "building the first Finvoice documents in 32 threads at once broke a fresh process "
        f"after {outcome['attempts']} attempts: {outcome['broken']}"
    )


def test_sends_fail_with_5xx_and_answers_are_dropped(rig: Rig) -> None:
    rig.knobs(fail_5xx=0.3, drop_after_store=0.1, seed=30)
    rig.start_worker("w1")
    rig.start_worker("w2")
    invoices = list(sample_invoices(500))
    started = rig.close_period(invoices)
    began = time.monotonic()
    summary = rig.wait_final(started.run, timeout=240)
    seconds = time.monotonic() - began
    result = audit(rig, started.run, invoices)
    shown = figures(rig, "5xx-and-drops", result, invoices=len(invoices), seconds=seconds)
    shown.emit()

    assert shown.injected_5xx > 0.2 * len(invoices), shown
    assert shown.dropped > 0.05 * len(invoices), shown
    _assert_whole(rig, result)
    assert summary is not None and summary.exported == 500


OUTAGE_S = 60.0
PATIENT = {
    "HEEROS_RETRY_BASE_S": "1",
    "HEEROS_RETRY_MAX_S": "10",
    "HEEROS_RETRY_MAX": "20",
    "HEEROS_CONFIRM_DEADLINE_S": "50",
}


def test_an_outage_of_a_minute_is_waited_out(rig: Rig) -> None:
    rig.env.update(PATIENT)
    rig.start_worker("w1")
    rig.start_worker("w2")
    invoices = list(sample_invoices(300))
    started = rig.close_period(invoices)
    began = time.monotonic()
    _wait_for_progress(rig, started.run, share=0.2)
    rig.knobs(outage=True)
    time.sleep(OUTAGE_S)
    during = rig.summary(started.run)
    rig.knobs(outage=False)
    summary = rig.wait_final(started.run, timeout=180)
    seconds = time.monotonic() - began
    result = audit(rig, started.run, invoices)
    figures(
        rig, "outage-60s", result, invoices=len(invoices), seconds=seconds, outage_s=OUTAGE_S
    ).emit()

    assert during is not None and during.in_progress > 0, "the outage hit no invoice in motion"
    _assert_whole(rig, result)
    assert summary is not None and summary.exported == 300


def test_an_outage_longer_than_the_retry_budget_fails_invoices_once(rig: Rig) -> None:
    budget = {"HEEROS_RETRY_BASE_S": "0.5", "HEEROS_RETRY_MAX_S": "1", "HEEROS_RETRY_MAX": "2"}
    rig.env.update(budget, HEEROS_CONCURRENCY="4")
    rig.knobs(latency_ms=150)
    rig.start_worker("w1")
    invoices = list(sample_invoices(150))
    started = rig.close_period(invoices)
    began = time.monotonic()
    _wait_for_progress(rig, started.run, share=0.2)
    rig.knobs(outage=True)
    outage_began = time.monotonic()
    # Down until every invoice not yet sent has spent its retries; the sent ones wait.
    unsent = _wait_until_sent_or_final(rig, started.run, timeout=60)
    outage_s = time.monotonic() - outage_began
    rig.knobs(outage=False)
    summary = rig.wait_final(started.run, timeout=60)
    seconds = time.monotonic() - began
    result = audit(rig, started.run, invoices, expect_in_heeros=False)
    figures(
        rig,
        "outage-beyond-budget",
        result,
        invoices=len(invoices),
        seconds=seconds,
        outage_s=outage_s,
    ).emit()

    assert unsent == 0, f"{unsent} invoices were still being retried after 60 s of outage"
    _assert_whole(rig, result, expect_in_heeros=False)
    assert summary is not None and 0 < summary.exported < 150, summary
    failed = [r for r in result.records.values() if r.state is State.FAILED]
    assert len(failed) == 150 - summary.exported, summary.as_dict()
    for record in failed:
        assert record.kind == "unavailable", record
        assert record.message is not None
        # Heeros not reached, or its login answered 5xx: message 1; a send answered 503:
        # message 2 with the HTTP code.
        assert record.message == MESSAGE_LOGIN_FAILED or (
            record.message.startswith(SEND_REFUSED_PREFIX)
            and "Error code from Heeros: HTTP_503." in record.message
        ), record

    # Heeros is back: nothing of the run is sent again, or changes, while the sweep runs.
    requests = {number: entry["requests"] for number, entry in rig.received().items()}
    time.sleep(35)
    assert {number: e["requests"] for number, e in rig.received().items()} == requests
    after = audit(rig, started.run, invoices, expect_in_heeros=False)
    assert {n: r.state for n, r in after.records.items()} == {
        n: r.state for n, r in result.records.items()
    }
