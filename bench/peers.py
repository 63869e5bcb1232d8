"""What the product is measured against, each run in the same benchmark as the product.

- :func:`sequential_export`: a plain loop with the project's own Heeros client and
  Finvoice rendering: send one invoice, sleep and poll until Heeros confirms it,
  then the next. Run on a small sample and scaled per invoice.
- :func:`naive_export`: the naive Celery exporter of :mod:`bench.naive_app` (one
  task per invoice that sleeps between polls), in real worker processes with
  the product's worker count, pool and concurrency. Run on a sample.
- :func:`noop_drain`: bare no-op Celery tasks queued and drained by those same
  workers: the ceiling of Celery itself on this machine.
- :func:`apply_async_loop`: ``task.apply_async(args)`` once per message, the
  plain way to queue what a period close queues.

Every peer sends to the benchmark's own sandbox and Redis (:mod:`bench.harness`),
never to the machine's.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from bench.harness import System, process_figures
from bench.naive_app import COUNTER, EXPORT_QUEUE, EXPORT_TASK, NOOP_QUEUE, NOOP_TASK
from bench.naive_app import create_app as create_naive_app
from producer.cli.localservices import LocalProcess
from worker.documents.finvoice import render_finvoice
from worker.documents.invoice import Invoice
from worker.heeros.client import HeerosClient
from worker.heeros.remote import RemoteState
from worker.pipeline import idempotency_key

ROOT = Path(__file__).resolve().parents[1]
UNACKED = "unacked"
"""The Redis transport's hash of delivered, unacknowledged messages."""


@dataclass(frozen=True)
class PeerRun:
    """What a peer did with its sample."""

    invoices: int
    seconds: float
    outcomes: dict[str, int]
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0

    @property
    def per_second(self) -> float:
        return self.invoices / self.seconds if self.seconds else 0.0

    @property
    def seconds_per_invoice(self) -> float:
        return self.seconds / self.invoices if self.invoices else 0.0


# -- (a) the sequential exporter ----------------------------------------------------------


def sequential_export(system: System, invoices: Sequence[Invoice], *, poll_s: float) -> PeerRun:
    """Export one invoice at a time: render, send, sleep and poll until Heeros decides."""
    export = system.config.exports[0]
    outcomes: dict[str, int] = {}
    started = time.perf_counter()
    with HeerosClient(
        base_url=system.sandbox.url,
        office_code=export.office_code,
        customer_code=export.customer_code,
        client_identity=export.file_transfer.client_identity,
        client_key=export.require_client_key(),
    ) as client:
        for invoice in invoices:
            document = render_finvoice(invoice, export.transform, encoding=export.encoding)
            heeros_id = client.send(
                invoice.number,
                document,
                export.options,
                idempotency_key(export, invoice.number),
                encoding=export.encoding,
            )
            while True:
                time.sleep(poll_s)
                state = client.status(heeros_id).state
                if state is not RemoteState.PENDING:
                    break
            name = "exported" if state is RemoteState.CONFIRMED else state.value
            outcomes[name] = outcomes.get(name, 0) + 1
    return PeerRun(len(invoices), time.perf_counter() - started, outcomes)


# -- (b) the naive Celery exporter and the no-op drain -----------------------------------


@dataclass
class NaiveWorkers:
    """The naive app's worker processes, started against the benchmark's Redis."""

    app: Celery
    processes: list[LocalProcess]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.app.close()


def start_naive_workers(
    system: System, count: int, *, env: dict[str, str], timeout: float = 60
) -> NaiveWorkers:
    """``count`` naive worker processes with the product's pool and concurrency, ready."""
    environment = {**system.env, **env, "PYTHONPATH": str(ROOT)}
    concurrency = environment.get("HEEROS_CONCURRENCY", "32")
    processes = []
    nodes = []
    for n in range(count):
        name = f"naive{n}"
        log_path = system.folder / f"{name}.log"
        argv = [
            sys.executable, "-m", "celery", "-A", "bench.naive_app", "worker",
            "-P", "threads", "-c", concurrency, "-Q", f"{EXPORT_QUEUE},{NOOP_QUEUE}",
            "-n", f"{name}@%h", "--loglevel", "WARNING",
        ]  # fmt: skip
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=ROOT,
                start_new_session=True,
            )  # fmt: skip
        processes.append(LocalProcess(name=name, popen=popen, log_path=log_path))
        nodes.append(f"{name}@{socket.gethostname()}")
    app = create_naive_app(system.settings)
    workers = NaiveWorkers(app, processes)
    deadline = time.monotonic() + timeout
    waiting = set(nodes)
    while waiting:
        for process in processes:
            if not process.alive():
                workers.stop()
                raise RuntimeError(f"{process.name} exited at start:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            workers.stop()
            raise RuntimeError(f"naive workers {sorted(waiting)} did not answer in {timeout:g} s")
        for answer in app.control.ping(destination=sorted(waiting), timeout=0.5) or []:
            waiting -= set(answer)
    return workers


def _timed_drain(
    workers: NaiveWorkers,
    task: str,
    queue: str,
    arguments: Sequence[tuple[Any, ...]],
    left: Callable[[], str | None],
    timeout: float,
) -> tuple[float, float, float]:
    """Queue ``task`` once per argument tuple (in batches, as the product queues) and wait
    until ``left()`` says nothing is: (seconds, worker CPU seconds, peak RSS MiB)."""
    before = process_figures(workers.pids)
    started = time.perf_counter()
    with workers.app.producer_or_acquire() as producer, producer.batch(500):
        for args in arguments:
            workers.app.send_task(task, args=args, queue=queue, producer=producer)
    deadline = time.monotonic() + timeout
    while (waiting := left()) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(waiting)
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    after = process_figures(workers.pids)
    return seconds, after.cpu_s - before.cpu_s, after.peak_rss_mib


def naive_export(
    system: System, workers: NaiveWorkers, invoices: Sequence[Invoice], *, timeout: float = 600
) -> PeerRun:
    """Queue one naive task per invoice and wait until every one has counted its outcome."""
    counters = redis.Redis.from_url(system.redis.url, decode_responses=True)
    for key in counters.scan_iter(COUNTER + "*"):
        counters.delete(key)
    bodies = [(invoice.model_dump(mode="json", round_trip=True),) for invoice in invoices]

    def left() -> str | None:
        outcomes = _outcomes(counters)
        if sum(outcomes.values()) >= len(invoices):
            return None
        return f"the naive exporter finished {outcomes} of {len(invoices)}"

    seconds, cpu_s, peak_rss_mib = _timed_drain(
        workers, EXPORT_TASK, EXPORT_QUEUE, bodies, left, timeout
    )
    outcomes = _outcomes(counters)
    counters.close()
    return PeerRun(len(invoices), seconds, outcomes, cpu_s, peak_rss_mib)


def _outcomes(counters: redis.Redis) -> dict[str, int]:
    found: dict[str, int] = {}
    for key in counters.scan_iter(COUNTER + "*"):
        found[str(key).removeprefix(COUNTER)] = int(counters.get(key) or 0)
    return found


def noop_drain(
    system: System, workers: NaiveWorkers, count: int, *, timeout: float = 600
) -> PeerRun:
    """Queue ``count`` no-op tasks (in batches, as the product queues) and time the drain."""
    broker = redis.Redis.from_url(system.redis.url)

    def left() -> str | None:
        # Late acknowledgement: a message leaves the unacked hash only when its task has run.
        if broker.llen(NOOP_QUEUE) or broker.hlen(UNACKED):
            return f"no-op drain: {broker.llen(NOOP_QUEUE)} still queued"
        return None

    seconds, cpu_s, peak_rss_mib = _timed_drain(
        workers, NOOP_TASK, NOOP_QUEUE, [()] * count, left, timeout
    )
    broker.close()
    return PeerRun(count, seconds, {"done": count}, cpu_s, peak_rss_mib)


# -- the plain publishing loop -------------------------------------------------------------


def apply_async_loop(app: Celery, task_name: str, arguments: Sequence[tuple[Any, ...]]) -> float:
    """Seconds to queue one message per argument tuple with ``task.apply_async(args)``."""
    task = app.tasks[task_name]
    started = time.perf_counter()
    for args in arguments:
        task.apply_async(args)
    return time.perf_counter() - started


__all__ = [
    "NaiveWorkers",
    "PeerRun",
    "apply_async_loop",
    "naive_export",
    "noop_drain",
    "sequential_export",
    "start_naive_workers",
]
