"""Benchmark 6, fairness: a small period beside a big one, and two tenants' big periods.

Small beside big: a 5-invoice period's time from its close to every invoice final,
first alone (the median of a few runs), then closed a few seconds after a big
period (20,000 invoices) has been queued and is draining on the same workers. The
difference is what the big run's backlog costs the small one; a single FIFO queue
would make it wait for that whole backlog, whose size and drain time at the
moment of the small close are printed beside it.

Tenants: two big periods of two Heeros tenants (exports with different customer
and office codes) closed one right after the other; each one's time from its close
to its first 10 % exported. The second tenant must start within a few seconds of
the first, not after the first one's backlog.

Neither big period is waited for to its end: the benchmark stops once its figure is
measured. The sandbox answers at 200 ms a call, as in the end-to-end benchmark.

    python -m bench.fairness [--quick]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from bench.e2e import SANDBOX_ARGS
from bench.harness import RECOMMENDED_ENV, RECOMMENDED_WORKERS, System, system
from bench.report import Table, Target, command, number
from producer.operations.runs import close_period, send_queue
from producer.operations.samples import CUSTOMERS, sample_invoices
from worker.celery.app import CeleryApp
from worker.celery.tasks import EXPRESS_QUEUE, SEND_QUEUE
from worker.config import ExportConfig
from worker.documents.invoice import Invoice
from worker.state.aggregator import RunState, RunSummary, summarize
from worker.state.keys import State
from worker.state.store import StatusStore

BIG = 20_000
SMALL = 5
TENANT_INVOICES = 5_000
HEAD_START_S = 5.0
"""How long the big period drains, once queued, before the small one is closed."""
ALONE_RUNS = 3
"""The small period alone is timed this many times; its median is the reference."""
WARM_UP = 100
"""Invoices exported before any timing, so that no timed run pays the workers' first
logins and the documents' first transforms."""
FIRST_SHARE = 0.10
LATENCY_MS = 200
CONFIRM_AFTER_S = 2.0

BESIDE = Target(10, higher=False, unit=" s")
SECOND_TENANT = Target(10, higher=False, unit=" s")

TENANT_A = "Heeros (tenant A)"
TENANT_B = "Heeros (tenant B)"
B_CUSTOMERS = {c.customer_number: f"2{c.customer_number[1:]}" for c in CUSTOMERS}
"""Tenant B's customers: the samples' buyers under numbers of their own (1001 → 2001)."""


def _export(name: str, customer_code: str, office_code: str) -> str:
    """One Heeros export of the benchmark's configuration, of its own tenant."""
    return f"""\
[[exports]]
name = "{name}"
type = "XmlSerializer"
encoding = "UTF-8"
customer_code = "{customer_code}"
office_code = "{office_code}"
start_text = "MoveOnlyToLedger=true"
one_file_per_invoice = true
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "bench"
client_key_env = "HEEROS_CLIENT_KEY"

"""


CONFIG = (
    _export(TENANT_A, "00079", "29010")
    + _export(TENANT_B, "00081", "29020")
    + f"""\
[[groups]]
name = "Tenant A"
exports = ["{TENANT_A}"]
default = true

[[groups]]
name = "Tenant B"
exports = ["{TENANT_B}"]

[customers]
"""
    + "".join(f'"{number}" = "Tenant B"\n' for number in B_CUSTOMERS.values())
)


def of_tenant_b(invoices: Sequence[Invoice]) -> list[Invoice]:
    """The same invoices, bought by tenant B's customers."""
    buyers = {
        c.customer_number: c.model_copy(update={"customer_number": B_CUSTOMERS[c.customer_number]})
        for c in CUSTOMERS
    }
    return [
        invoice.model_copy(update={"customer": buyers[invoice.customer.customer_number]})
        for invoice in invoices
    ]


@dataclass
class Closer:
    """Closes periods on one running system and reads their progress."""

    bench: System
    app: CeleryApp
    store: StatusStore
    config: ExportConfig

    def close(self, invoices: Sequence[Invoice], period: str) -> str:
        return close_period(self.app, self.store, self.config, invoices, period=period).run

    def summary(self, run: str) -> RunSummary:
        found = summarize(self.store, run)
        if found is None:
            raise RuntimeError(f"run {run} is not in the store")
        return found

    def until(
        self, run: str, done: Callable[[RunSummary], bool], *, timeout: float
    ) -> tuple[float, RunSummary]:
        """Wait until ``done`` holds for the run: the clock then, and the run's figures."""
        deadline = time.monotonic() + timeout
        while True:
            summary = self.summary(run)
            if done(summary):
                return time.perf_counter(), summary
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run} did not get there in {timeout:.0f} s: {summary}")
            time.sleep(0.05)

    def timed_small(self, invoices: Sequence[Invoice], period: str, timeout: float) -> float:
        """Seconds from the close of ``invoices`` to every one of them final."""
        began = time.perf_counter()
        run = self.close(invoices, period)
        ended, summary = self.until(run, _finished, timeout=timeout)
        if summary.state is not RunState.COMPLETE:
            raise RuntimeError(f"period {period} did not export cleanly: {summary.as_dict()}")
        return ended - began


def _finished(summary: RunSummary) -> bool:
    return summary.state is not RunState.RUNNING


def _unsent(summary: RunSummary) -> int:
    """Items no worker has sent yet: what a FIFO queue holds ahead of anything new."""
    return summary.counts.get(State.QUEUED.value, 0) + summary.counts.get(State.SENDING.value, 0)


def _queued_messages(bench: System) -> dict[str, int]:
    client = redis.Redis.from_url(bench.redis.url)
    try:
        return {queue: int(client.llen(queue)) for queue in (EXPRESS_QUEUE, SEND_QUEUE)}
    finally:
        client.close()


@dataclass(frozen=True)
class SmallBesideBig:
    alone: list[float]
    beside: float
    big_close_s: float
    big_unsent: int
    """The big run's items not yet sent when the small period was closed."""
    big_messages: int
    """Send messages waiting in the broker then."""
    big_rate: float
    """The workers' sends per second from the big close's return to the small one's end."""
    big_drained: bool
    """Whether the big run had no send left when the small one ended."""

    @property
    def alone_median(self) -> float:
        return statistics.median(self.alone)

    @property
    def fifo_wait(self) -> float:
        return self.big_unsent / self.big_rate if self.big_rate else float("nan")


@dataclass(frozen=True)
class Tenants:
    first_s: float
    """Tenant A's time from its close to its first share exported."""
    second_s: float
    """Tenant B's, from its own close (or how long it was waited for, not ``reached``)."""
    reached: bool
    first_backlog: int
    """Tenant A's items not yet sent when B's close returned."""
    rate: float
    """Both tenants' sends per second from then until B reached its share."""
    exported_then: tuple[int, int]
    """Each tenant's invoices exported when B reached its share."""

    @property
    def lag(self) -> float:
        return self.second_s - self.first_s


def small_beside_big(
    closer: Closer,
    small: list[list[Invoice]],
    big: Sequence[Invoice],
    *,
    head_start_s: float,
    timeout: float,
) -> SmallBesideBig:
    alone = [
        closer.timed_small(invoices, f"SMALL-ALONE-{n}", timeout)
        for n, invoices in enumerate(small[:-1], start=1)
    ]
    started = time.perf_counter()
    big_run = closer.close(big, "BIG")
    queued_at = time.perf_counter()
    unsent_queued = _unsent(closer.summary(big_run))
    time.sleep(head_start_s)
    before = closer.summary(big_run)
    messages = sum(_queued_messages(closer.bench).values())
    beside = closer.timed_small(small[-1], "SMALL-BESIDE", timeout)
    after = closer.summary(big_run)
    ended = time.perf_counter()
    return SmallBesideBig(
        alone=alone,
        beside=beside,
        big_close_s=queued_at - started,
        big_unsent=_unsent(before),
        big_messages=messages,
        big_rate=(unsent_queued - _unsent(after)) / (ended - queued_at),
        big_drained=_unsent(after) == 0,
    )


def two_tenants(
    closer: Closer, first: Sequence[Invoice], second: Sequence[Invoice], *, timeout: float
) -> Tenants:
    """Close ``first`` (tenant A) and right after it ``second`` (tenant B); wait until each
    has its first share exported, or until ``timeout`` has passed since B's close."""
    began_first = time.perf_counter()
    run_first = closer.close(first, "TENANT-A")
    began_second = time.perf_counter()
    run_second = closer.close(second, "TENANT-B")
    queued = time.perf_counter()
    one, two = closer.summary(run_first), closer.summary(run_second)
    backlog = _unsent(one)
    unsent = backlog + _unsent(two)
    reached: dict[str, float] = {}
    goals = {
        run_first: max(1, round(FIRST_SHARE * len(first))),
        run_second: max(1, round(FIRST_SHARE * len(second))),
    }
    deadline = time.monotonic() + timeout
    while True:
        now = time.perf_counter()
        one, two = closer.summary(run_first), closer.summary(run_second)
        for summary in (one, two):
            if summary.run not in reached and summary.exported >= goals[summary.run]:
                reached[summary.run] = now
        if len(reached) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    sent = unsent - _unsent(one) - _unsent(two)
    return Tenants(
        first_s=reached.get(run_first, now) - began_first,
        second_s=reached.get(run_second, now) - began_second,
        reached=run_second in reached,
        first_backlog=backlog,
        rate=sent / max(now - queued, 1e-9),
        exported_then=(one.exported, two.exported),
    )


def _start(bench: System) -> None:
    bench.reset()
    bench.start_workers(RECOMMENDED_WORKERS, env=dict(RECOMMENDED_ENV))


def run(
    *,
    big: int = BIG,
    tenant_invoices: int = TENANT_INVOICES,
    small: int = SMALL,
    head_start_s: float = HEAD_START_S,
    alone_runs: int = ALONE_RUNS,
    latency_ms: int = LATENCY_MS,
    timeout: float = 300,
) -> Table:
    began = time.perf_counter()
    settings = ", ".join(f"{k}={v}" for k, v in RECOMMENDED_ENV.items())
    table = Table(
        "6. Fairness",
        setup=f"sandbox {latency_ms} ms a call, confirmation after {CONFIRM_AFTER_S:g} s, its "
        f"schema check off; {RECOMMENDED_WORKERS} worker processes, {settings}. A "
        f"{small}-invoice period (queue {send_queue(small)}) alone, then closed "
        f"{head_start_s:g} s after the close of a {big:,}-invoice period (queue "
        f"{send_queue(big)}) had returned, every send queued; then two tenants' periods "
        f"of {tenant_invoices:,} invoices each (queue "
        f"{send_queue(tenant_invoices)}) closed one right after the other.",
    )
    # The big period's invoices serve the tenants too: the store is emptied in between.
    numbered = list(sample_invoices(max(big, 2 * tenant_invoices), first=100_001))
    smalls = [list(sample_invoices(small, first=900_001 + 100 * n)) for n in range(alone_runs + 1)]
    warm_up = list(sample_invoices(WARM_UP, first=800_001))
    with system(
        latency_ms=latency_ms, confirm_after_s=CONFIRM_AFTER_S, sandbox_args=SANDBOX_ARGS
    ) as bench:
        bench.config_path.write_text(CONFIG, encoding="utf-8")
        _start(bench)
        app = bench.app()
        try:
            closer = Closer(bench, app, bench.store, bench.config)
            closer.until(closer.close(warm_up, "WARM-UP"), _finished, timeout=timeout)
            beside = small_beside_big(
                closer, smalls, numbered[:big], head_start_s=head_start_s, timeout=timeout
            )
            bench.stop_workers()
            _start(bench)
            tenants = two_tenants(
                closer,
                numbered[:tenant_invoices],
                of_tenant_b(numbered[tenant_invoices : 2 * tenant_invoices]),
                timeout=timeout,
            )
        finally:
            app.close()
    small_rows(table, beside, small=small, big=big, head_start_s=head_start_s)
    tenant_rows(table, tenants, size=tenant_invoices)
    table.seconds = time.perf_counter() - began
    return table


def small_rows(
    table: Table, figures: SmallBesideBig, *, small: int, big: int, head_start_s: float
) -> None:
    alone = ", ".join(f"{seconds:.1f}" for seconds in figures.alone)
    table.add(
        f"{small} invoices alone: close → all final (median of {alone} s)",
        figures.alone_median,
        " s",
    )
    table.add(
        f"{small} invoices closed {head_start_s:g} s after {big:,} were queued: close → all final",
        figures.beside,
        " s",
    )
    table.add(
        f"{small} invoices beside {big:,} − alone",
        figures.beside - figures.alone_median,
        " s",
        target=BESIDE,
    )
    table.text(
        f"the {big:,}-invoice period's backlog when the small one was closed",
        f"{figures.big_unsent:,} invoices not yet sent ({figures.big_messages:,} send messages "
        f"in the broker): {number(figures.fifo_wait)} s at the workers' "
        f"{number(figures.big_rate)} sends/s, the wait behind one FIFO queue",
    )
    table.add(f"the {big:,}-invoice period's close (record + queue)", figures.big_close_s, " s")
    if figures.big_drained:
        table.notes.append(
            f"The {big:,}-invoice period had no send left when the small one ended: "
            "the small one did not run beside a backlog all along."
        )


def tenant_rows(table: Table, figures: Tenants, *, size: int) -> None:
    share = f"{FIRST_SHARE:.0%}"
    lag = f"second tenant starts: B's time to its first {share} exported − A's"
    table.add(f"tenant A, {size:,} invoices: close → first {share} exported", figures.first_s, " s")
    if figures.reached:
        table.add(
            f"tenant B, {size:,} invoices, closed right after: close → first {share} exported",
            figures.second_s,
            " s",
        )
        table.add(lag, figures.lag, " s", target=SECOND_TENANT)
    else:
        table.text(
            f"tenant B, {size:,} invoices, closed right after: close → first {share} exported",
            f"not reached in {figures.second_s:.0f} s",
        )
        table.text(lag, f"over {number(figures.lag)} s", target=SECOND_TENANT, verdict="missed")
    fifo = figures.first_backlog / figures.rate if figures.rate else float("nan")
    table.text(
        "tenant A's backlog when B's close returned",
        f"{figures.first_backlog:,} invoices not yet sent: {number(fifo)} s at the workers' "
        f"{number(figures.rate)} sends/s, the wait behind one FIFO queue",
    )
    one, two = figures.exported_then
    table.text(f"invoices exported when B reached {share}", f"A {one:,}, B {two:,}")
    table.notes.append(
        "Tenant A's export has customer code 00079 and office code 29010, tenant B's 00081 "
        "and 29020; each tenant has its own request limit (HEEROS_TENANT_RPS), so only the "
        "workers are shared."
    )


def benchmark(*, quick: bool = False) -> Table:
    """The benchmark at its sizes (``quick``: small ones, for a smoke run)."""
    return run(**QUICK_SIZES) if quick else run()


QUICK_SIZES: dict[str, int] = {"big": 3_000, "tenant_invoices": 1_500}
"""Both stay above the express queue's limit, as the full sizes do."""


def main(argv: Sequence[str] | None = None) -> None:
    command(__doc__, benchmark, argv)


if __name__ == "__main__":
    main()


__all__ = ["QUICK_SIZES", "benchmark", "run"]
