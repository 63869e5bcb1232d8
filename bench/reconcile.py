"""5. Reconciliation beside an export: ``python -m bench.reconcile [--quick]``.

A period of 10,000 invoices (500 with ``--quick``) is exported, then reconciled
against Heeros (one look-up per invoice) while another period is exported beside
it, on the same tenant and the same workers. Printed: the export's rate alone and
beside the reconciliation, their ratio, and the reconciliation's own rate against
its lane's share of the tenant's limit. Every request of both passes the tenant's
shared limits (``HEEROS_TENANT_RPS``), so the pair never goes past them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from bench.harness import RECOMMENDED_ENV, RECOMMENDED_WORKERS, System, command_line, system
from bench.report import Table
from producer.operations.reconcile import Reconciler
from producer.operations.runs import close_period
from producer.operations.samples import sample_invoices
from worker.celery.reconciliation import RECONCILE_SHARE
from worker.state.aggregator import RunState

TENANT_RPS = 400
LATENCY_MS = 20
ENV = {**RECOMMENDED_ENV, "HEEROS_TENANT_RPS": str(TENANT_RPS), "HEEROS_POLL_FIRST_S": "0.5"}


def export_rate(bench: System, period: str, count: int, first: int, timeout: float) -> float:
    """Close a period of ``count`` invoices and wait for its end: invoices exported a second."""
    app = bench.app()
    try:
        invoices = list(sample_invoices(count, period=period, first=first))
        began = time.perf_counter()
        started = close_period(app, bench.store, bench.config, invoices, period=period)
        summary = bench.wait(started.run, timeout=timeout, interval=0.1)
        seconds = time.perf_counter() - began
    finally:
        app.close()
    if summary.state is not RunState.COMPLETE:
        raise RuntimeError(f"period {period} did not export cleanly: {summary.as_dict()}")
    return count / seconds


def run(*, reconciled: int, exported: int, timeout: float = 1800) -> Table:
    table = Table(
        "5. Reconciliation beside an export",
        setup=f"{RECOMMENDED_WORKERS} workers, sandbox latency {LATENCY_MS} ms, tenant limit "
        f"{TENANT_RPS} requests/s (the reconciliation's lane: {RECONCILE_SHARE:.0%} of it); "
        f"a period of {reconciled:,} invoices reconciled while {exported:,} are exported",
    )
    with system(latency_ms=LATENCY_MS, confirm_after_s=0.5) as bench:
        bench.reset()
        bench.start_workers(RECOMMENDED_WORKERS, env=ENV)
        export_rate(bench, "2026-10", reconciled, 500001, timeout)  # the period to reconcile
        alone = export_rate(bench, "2026-11", exported, 100001, timeout)
        app = bench.app()
        try:
            reconciler = Reconciler(app, bench.store, bench.config)
            began = time.perf_counter()
            started = reconciler.start("2026-10")
            beside = export_rate(bench, "2026-12", exported, 200001, timeout)
            deadline = time.monotonic() + timeout
            while (record := reconciler.recons.record(started.reconciliation)) and not record.done:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{started.reconciliation} did not finish")
                time.sleep(0.2)
            seconds = time.perf_counter() - began
            report = reconciler.report(started.reconciliation)
        finally:
            app.close()
    confirmed = report.counts.get("confirmed", 0)
    table.text(f"{exported:,}: export alone", f"{alone:.0f} invoices/s")
    table.text(f"{exported:,}: export beside the reconciliation", f"{beside:.0f} invoices/s")
    table.text("ratio (beside / alone)", f"{beside / alone:.2f}")
    table.text(
        f"{reconciled:,}: reconciliation",
        f"{seconds:.1f} s, {report.total / seconds:.0f} look-ups/s "
        f"(lane cap {TENANT_RPS * RECONCILE_SHARE:.0f}/s)",
    )
    table.text(f"{reconciled:,}: confirmed in the report", f"{confirmed:,} of {report.total:,}")
    table.notes.append(f"command: {command_line()}")
    return table


def benchmark(*, quick: bool = False) -> Table:
    return run(reconciled=500, exported=300) if quick else run(reconciled=10_000, exported=3_000)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reconcile", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    options = parser.parse_args(argv)
    print(benchmark(quick=options.quick).markdown())


if __name__ == "__main__":
    main()
