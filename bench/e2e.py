"""Benchmark 2, end to end: a period from its close to the last confirmation, against the peers.

The product runs with the worker settings the README recommends for one 2-core
machine (:data:`bench.harness.RECOMMENDED_WORKERS` processes with
:data:`bench.harness.RECOMMENDED_ENV`); the naive Celery exporter runs with the
same process count, pool and concurrency; the sequential exporter exports a
small sample one invoice at a time. Both peers poll as often as the product
first does (``HEEROS_POLL_FIRST_S``) and are scaled per invoice.

Besides the rates: worker CPU per invoice (every worker process's CPU time over
the invoices), peak RSS of the worker processes, Redis memory per invoice after
the run (``INFO memory`` delta), Redis commands per invoice (the benchmark's own
progress reads taken out), and where the machine's CPU went during the run.

    python -m bench.e2e [--quick]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from bench.harness import (
    RECOMMENDED_ENV,
    RECOMMENDED_WORKERS,
    System,
    process_figures,
    redis_figures,
    system,
)
from bench.peers import (
    PeerRun,
    naive_export,
    noop_drain,
    sequential_export,
    start_naive_workers,
)
from bench.report import Table, Target, command, number, ratio
from producer.operations.runs import close_period
from producer.operations.samples import sample_invoices
from worker.documents.invoice import Invoice
from worker.state.aggregator import RunState, RunSummary, summarize
from worker.state.store import StatusStore

INVOICES = 5_000
SEQUENTIAL_SAMPLE = 10
NAIVE_WAVES = 4
"""The naive sample fills every thread of every naive worker this many times over."""
NAIVE_MINIMUM = 300
SANDBOX_ARGS = ("--no-validate",)
"""The sandbox skips its XSD check: it runs on the same two cores as the workers,
where Heeros's own check does not. The product still checks every document."""

RATE = Target(200, higher=True, unit=" /s")
OVER_NAIVE = Target(12, higher=True, unit="×")
OVER_SEQUENTIAL = Target(300, higher=True, unit="×")
CPU_PER_INVOICE = Target(5, higher=False, unit=" ms")
REDIS_PER_INVOICE = Target(2048, higher=False, unit=" B")
COMMANDS_PER_INVOICE = Target(20, higher=False)

FIRST_NUMBER = {"product": 100_001, "sequential": 300_001, "naive": 400_001}


@dataclass(frozen=True)
class ProductRun:
    """One period exported by the product's own workers, with what it cost."""

    invoices: int
    seconds: float
    close_s: float
    summary: RunSummary
    cpu_s: float
    peak_rss_mib: float
    redis_bytes: float
    redis_commands: float
    own_commands: float
    command_mix: dict[str, float]
    sends: int
    received: int
    cpu_elsewhere: dict[str, float]

    @property
    def per_second(self) -> float:
        return self.invoices / self.seconds

    @property
    def drain_per_second(self) -> float:
        """From the moment the close has returned (every task queued) to the end."""
        return self.invoices / max(self.seconds - self.close_s, 1e-9)

    @property
    def cpu_ms_per_invoice(self) -> float:
        return self.cpu_s * 1000 / self.invoices


def invoices_for(role: str, count: int) -> list[Invoice]:
    return list(sample_invoices(count, first=FIRST_NUMBER[role]))


def product_run(
    bench: System,
    invoices: Sequence[Invoice],
    *,
    period: str,
    workers: int = RECOMMENDED_WORKERS,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> ProductRun:
    """Close a period of ``invoices`` with the product's workers running; wait for its end."""
    bench.reset()
    app, store, config = bench.app(), bench.store, bench.config
    memory_before = redis_figures(bench.redis.url)["used_memory"]
    started_workers = bench.start_workers(
        workers, env=dict(RECOMMENDED_ENV if env is None else env)
    )
    pids = [worker.pid for worker in started_workers]
    others = {"sandbox": [bench.sandbox.pid], "redis": [bench.redis.pid]}
    try:
        cpu_before = process_figures(pids).cpu_s
        elsewhere_before = {name: process_figures(p).cpu_s for name, p in others.items()}
        own_before = time.process_time()
        commands_before = redis_figures(bench.redis.url)["commands"]
        mix_before = command_calls(bench.redis.url)
        started = time.perf_counter()
        accepted = close_period(app, store, config, invoices, period=period)
        close_s = time.perf_counter() - started
        reads = 0
        deadline = time.monotonic() + timeout
        while True:
            summary = summarize(store, accepted.run)
            reads += 1
            if summary is not None and summary.state is not RunState.RUNNING:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {accepted.run} did not finish: {summary}")
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        commands = redis_figures(bench.redis.url)["commands"] - commands_before
        mix_after = command_calls(bench.redis.url)
        figures = process_figures(pids)
        elsewhere = {
            name: process_figures(p).cpu_s - elsewhere_before[name] for name, p in others.items()
        }
        elsewhere["benchmark process (close, reads)"] = time.process_time() - own_before
    finally:
        bench.stop_workers()
        app.close()
    memory_after = redis_figures(bench.redis.url)["used_memory"]
    own = reads * _commands_of_one_read(bench, store, accepted.run)
    received = bench.received()["tenants"]
    entries = [entry for tenant in received for entry in tenant["received"]]
    return ProductRun(
        invoices=len(invoices),
        seconds=seconds,
        close_s=close_s,
        summary=summary,
        cpu_s=figures.cpu_s - cpu_before,
        peak_rss_mib=figures.peak_rss_mib,
        redis_bytes=memory_after - memory_before,
        redis_commands=commands - own,
        own_commands=own,
        command_mix={name: calls - mix_before.get(name, 0) for name, calls in mix_after.items()},
        sends=sum(int(entry.get("requests") or 0) for entry in entries),
        received=sum(1 for entry in entries if entry.get("invoiceId")),
        cpu_elsewhere=elsewhere,
    )


def command_calls(url: str) -> dict[str, float]:
    """Calls of each Redis command so far (``INFO commandstats``)."""
    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    client.close()
    return {
        str(name).removeprefix("cmdstat_"): float(values["calls"])
        for name, values in stats.items()
        if isinstance(values, dict)
    }


def _commands_of_one_read(bench: System, store: StatusStore, run: str) -> float:
    # What one progress read costs in Redis commands, net of reading the counter itself.
    first = redis_figures(bench.redis.url)["commands"]
    second = redis_figures(bench.redis.url)["commands"]
    summarize(store, run)
    third = redis_figures(bench.redis.url)["commands"]
    return max(0.0, (third - second) - (second - first))


@dataclass(frozen=True)
class Comparison:
    product: ProductRun
    sequential: PeerRun
    naive: PeerRun
    noop: PeerRun | None = None

    @property
    def over_sequential(self) -> float:
        return ratio(self.product.per_second, self.sequential.per_second)

    @property
    def over_naive(self) -> float:
        return ratio(self.product.per_second, self.naive.per_second)


def compare(
    bench: System,
    *,
    invoices: int,
    sequential_sample: int,
    naive_sample: int,
    period: str,
    noop_tasks: int = 0,
    product_env: dict[str, str] | None = None,
) -> Comparison:
    """The product (its workers' environment ``product_env``, the recommended one if not
    given), then the sequential exporter, then the naive one (and a no-op drain)."""
    product = product_run(bench, invoices_for("product", invoices), period=period, env=product_env)
    poll_s = bench.settings.poll_first_s
    bench.reset()
    sequential = sequential_export(
        bench, invoices_for("sequential", sequential_sample), poll_s=poll_s
    )
    bench.reset()
    workers = start_naive_workers(bench, RECOMMENDED_WORKERS, env=RECOMMENDED_ENV)
    try:
        naive = naive_export(bench, workers, invoices_for("naive", naive_sample))
        noop = noop_drain(bench, workers, noop_tasks) if noop_tasks else None
    finally:
        workers.stop()
    return Comparison(product, sequential, naive, noop)


# The sizes of a smoke run (``--quick``), shared with the zero-latency ceiling.
QUICK_SIZES: dict[str, int] = {
    "invoices": 300,
    "sequential_sample": 3,
    "naive_sample": NAIVE_MINIMUM,
}


def naive_sample_size() -> int:
    threads = RECOMMENDED_WORKERS * int(RECOMMENDED_ENV.get("HEEROS_CONCURRENCY", "32"))
    return max(NAIVE_MINIMUM, NAIVE_WAVES * threads)


def product_rows(table: Table, product: ProductRun, *, targets: bool) -> None:
    """The product's figures, shared with the zero-latency ceiling."""
    counts = {state: n for state, n in product.summary.counts.items() if n}
    table.add("product: close → last confirmation", product.seconds, " s")
    table.add(
        "product: invoices per second",
        product.per_second,
        " /s",
        target=RATE if targets else None,
    )
    table.add("product: the close itself (record + queue)", product.close_s, " s")
    table.add("product: invoices per second once queued", product.drain_per_second, " /s")
    table.text(
        "product: outcome",
        ", ".join(f"{state} {n:,}" for state, n in counts.items())
        + f"; Heeros holds {product.received:,}, sends per invoice "
        + number(ratio(product.sends, product.invoices)),
    )
    table.add(
        "worker CPU per invoice (all worker processes)",
        product.cpu_ms_per_invoice,
        " ms",
        target=CPU_PER_INVOICE if targets else None,
    )
    table.add("peak RSS of the worker processes (sum)", product.peak_rss_mib, " MiB")
    table.add(
        "Redis memory per invoice after the run",
        product.redis_bytes / product.invoices,
        " B",
        target=REDIS_PER_INVOICE if targets else None,
    )
    table.add(
        "Redis commands per invoice",
        product.redis_commands / product.invoices,
        target=COMMANDS_PER_INVOICE if targets else None,
    )
    mix = sorted(product.command_mix.items(), key=lambda pair: -pair[1])[:8]
    table.text(
        "Redis commands per invoice, the most called",
        ", ".join(f"{name} {number(calls / product.invoices)}" for name, calls in mix),
    )
    busy = {"workers": product.cpu_s, **product.cpu_elsewhere}
    table.text(
        "CPU used during the run (cores, of 2)",
        ", ".join(f"{name} {number(cpu / product.seconds)}" for name, cpu in busy.items()),
    )


def peer_rows(table: Table, comparison: Comparison, *, targets: bool) -> None:
    sequential, naive = comparison.sequential, comparison.naive
    table.add(
        f"sequential exporter: seconds per invoice (sample of {sequential.invoices})",
        sequential.seconds_per_invoice,
        " s",
    )
    table.add(
        f"sequential exporter: {comparison.product.invoices:,} invoices, scaled",
        sequential.seconds_per_invoice * comparison.product.invoices / 60,
        " min",
    )
    table.add(
        "product ÷ sequential exporter",
        comparison.over_sequential,
        "×",
        target=OVER_SEQUENTIAL if targets else None,
    )
    table.add(
        f"naive Celery exporter: invoices per second (sample of {naive.invoices})",
        naive.per_second,
        " /s",
    )
    table.add(
        "naive Celery exporter: worker CPU per invoice",
        naive.cpu_s * 1000 / max(naive.invoices, 1),
        " ms",
    )
    if set(naive.outcomes) != {"exported"}:
        table.text("naive Celery exporter: outcome", str(naive.outcomes))
    table.add(
        "product ÷ naive Celery exporter",
        comparison.over_naive,
        "×",
        target=OVER_NAIVE if targets else None,
    )


def unlimited_rows(table: Table, unlimited: ProductRun, comparison: Comparison) -> None:
    """The product again with the shared request-rate limit off (HEEROS_TENANT_RPS=0)."""
    name = "product, tenant rate limit off"
    table.add(f"{name}: invoices per second", unlimited.per_second, " /s")
    table.add(f"{name}: worker CPU per invoice", unlimited.cpu_ms_per_invoice, " ms")
    table.add(
        f"{name} ÷ naive Celery exporter",
        ratio(unlimited.per_second, comparison.naive.per_second),
        "×",
    )


def setup_line(invoices: int, latency_ms: int, confirm_after_s: float) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in RECOMMENDED_ENV.items())
    return (
        f"{invoices:,} invoices; sandbox {latency_ms} ms a call, confirmation after "
        f"{confirm_after_s:g} s, its schema check off; {RECOMMENDED_WORKERS} worker processes, "
        f"threads pool, {settings} (the README's settings for one 2-core machine), for the "
        "product and the naive exporter alike."
    )


def run(
    *,
    invoices: int = INVOICES,
    sequential_sample: int = SEQUENTIAL_SAMPLE,
    naive_sample: int | None = None,
    latency_ms: int = 200,
    confirm_after_s: float = 2.0,
) -> Table:
    began = time.perf_counter()
    naive_sample = naive_sample or naive_sample_size()
    table = Table(
        f"2. End to end at {latency_ms} ms latency",
        setup=setup_line(invoices, latency_ms, confirm_after_s),
    )
    with system(
        latency_ms=latency_ms, confirm_after_s=confirm_after_s, sandbox_args=SANDBOX_ARGS
    ) as bench:
        comparison = compare(
            bench,
            invoices=invoices,
            sequential_sample=sequential_sample,
            naive_sample=naive_sample,
            period="E2E",
        )
        unlimited = product_run(
            bench,
            invoices_for("product", invoices),
            period="E2F",
            env={**RECOMMENDED_ENV, "HEEROS_TENANT_RPS": "0"},
        )
    product_rows(table, comparison.product, targets=True)
    peer_rows(table, comparison, targets=True)
    unlimited_rows(table, unlimited, comparison)
    table.notes += [
        "Each invoice costs two Heeros requests (send, status), so the default limit of "
        "500 requests per second per tenant (HEEROS_TENANT_RPS) caps the product at 250 "
        "invoices per second; sends it holds back are retried, which costs CPU. The run "
        "with the limit off shows the product without that cap.",
        "Peers poll every HEEROS_POLL_FIRST_S (the product's first poll) and are scaled per "
        "invoice; the product's rate is measured on the whole period.",
        f"Redis commands exclude the benchmark's own progress reads "
        f"({number(comparison.product.own_commands / comparison.product.invoices)} "
        "per invoice).",
    ]
    table.seconds = time.perf_counter() - began
    return table


def benchmark(*, quick: bool = False) -> Table:
    """The benchmark at its sizes (``quick``: small ones, for a smoke run)."""
    return run(**QUICK_SIZES) if quick else run()


def main(argv: Sequence[str] | None = None) -> None:
    command(__doc__, benchmark, argv)


if __name__ == "__main__":
    main()


__all__ = [
    "QUICK_SIZES",
    "Comparison",
    "ProductRun",
    "benchmark",
    "compare",
    "product_rows",
    "product_run",
    "run",
    "unlimited_rows",
]
