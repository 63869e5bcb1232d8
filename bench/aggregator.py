"""Benchmark 4, the aggregator: a run's status (its figures and the first page of failures).

Runs of 1,000, 10,000 and 100,000 invoices are recorded in the private Redis the
way the workers leave them (every state change through the store's own
transition), each ending with 2 % failed (at least 60), 0.5 % incomplete and
0.5 % unconfirmed (at least 5 each), the rest exported, so that every size has a
full first page of failures. A status read is what ``heeros-export status --json`` and the
API's run view ask for: ``summarize`` and ``problems`` (the first 50). Each is
called 1,000 times per run size, the sizes taking turns call by call; the median
and p99 are reported, and the median at the largest size against the smallest
shows whether a read grows with the run.

    python -m bench.aggregator [--quick]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from bench.harness import system
from bench.report import Table, Target, command, number, percentile
from worker.state.aggregator import problems, summarize
from worker.state.keys import State, item_id
from worker.state.store import RunRecord, StatusStore

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (100, 1_000)
CALLS = 1_000
PAGE = 50
EXPORT = "Heeros (API)"
MEDIAN = Target(5, higher=False, unit=" ms")
GROWTH = Target(1.5, higher=False, unit="× the smallest run's")
""""Independent of run size", with room for this machine's noise."""
OUTCOMES = ((State.FAILED, 0.02, 60), (State.INCOMPLETE, 0.005, 5), (State.UNCONFIRMED, 0.005, 5))
"""Each problem state's share of a run, and its least count (a full first page at every size)."""
KINDS = ("validation", "refused", "schema", "unavailable")


def record_run(store: StatusStore, size: int) -> str:
    """A finished run of ``size`` invoices with a few failures of each kind."""
    run = f"AGG{size}-0001"
    now = time.time()
    items = [(item_id(str(100_001 + n), 0), str(100_001 + n), 0) for n in range(size)]
    store.create_run(
        RunRecord(run=run, period=f"AGG{size}", total=size, created=now, exports=[EXPORT]),
        items,
        {},
    )
    ends: list[State] = []
    for state, share, least in OUTCOMES:
        ends += [state] * max(least, round(size * share))
    ends += [State.EXPORTED] * (size - len(ends))
    for n, ((item, invoice, _), state) in enumerate(zip(items, ends, strict=True)):
        heeros_id, sent = f"HX{n:08d}", f"{now:.3f}"
        if state is State.EXPORTED:
            store.transition(
                run, item, state, export_index=0, heeros_id=heeros_id, sent=sent,
                attempts="1", heeros_status="CONFIRMED",
            )  # fmt: skip
        else:
            store.transition(
                run, item, state, export_index=0, heeros_id=heeros_id, sent=sent,
                attempts="1", kind=KINDS[n % len(KINDS)] if state is State.FAILED else "",
                message=f"Invoice {invoice} was not exported: a reason a user can read.",
            )  # fmt: skip
    return run


def run(sizes: Sequence[int] = SIZES, *, calls: int = CALLS) -> Table:
    began = time.perf_counter()
    table = Table(
        "4. Aggregator",
        setup=f"Status of a finished run (figures + the first {PAGE} failures), {calls:,} calls "
        "per run size, against the private Redis on loopback; each run ends with 3 % failed, "
        "incomplete or unconfirmed (at least 70), the rest exported.",
    )
    runs: dict[int, str] = {}
    samples: dict[tuple[int, str], list[float]] = {}
    with system(latency_ms=0, confirm_after_s=0) as bench:
        store = bench.store
        for size in sizes:
            runs[size] = record_run(store, size)
            summary = summarize(store, runs[size])
            page = problems(store, runs[size], count=PAGE)
            if summary is None or summary.total != size or len(page) != min(PAGE, summary.failed):
                raise RuntimeError(f"run of {size}: summary {summary}, {len(page)} problems")
        # Round robin over the sizes, so that the machine's drift touches each size alike.
        reads: dict[str, Callable[[str], object]] = {
            "figures": lambda run_id: summarize(store, run_id),
            "failures": lambda run_id: problems(store, run_id, count=PAGE),
            "status": lambda run_id: (
                summarize(store, run_id),
                problems(store, run_id, count=PAGE),
            ),
        }
        for _ in range(calls):
            for size, run_id in runs.items():
                for name, read in reads.items():
                    started = time.perf_counter()
                    read(run_id)
                    elapsed = (time.perf_counter() - started) * 1000
                    samples.setdefault((size, name), []).append(elapsed)
    medians = {size: statistics.median(samples[size, "status"]) for size in sizes}
    for size in sizes:
        table.add(
            f"{size:,}: status, median",
            medians[size],
            " ms",
            target=MEDIAN if size == max(sizes) else None,
        )
        table.add(f"{size:,}: status, p99", percentile(samples[size, "status"], 0.99), " ms")
        table.text(
            f"{size:,}: of which figures / first page of failures, median",
            f"{number(statistics.median(samples[size, 'figures']))} ms / "
            f"{number(statistics.median(samples[size, 'failures']))} ms",
        )
    if len(sizes) > 1:
        growth = medians[max(sizes)] / medians[min(sizes)]
        table.add(
            f"median at {max(sizes):,} ÷ median at {min(sizes):,}",
            growth,
            "×",
            target=GROWTH,
        )
    table.notes.append(
        "Library calls in this process (what `heeros-export status --json` and the API's run "
        "view do), so the figures hold Redis round trips and decoding, not HTTP."
    )
    table.seconds = time.perf_counter() - began
    return table


def benchmark(*, quick: bool = False) -> Table:
    """The benchmark at its sizes (``quick``: small ones, for a smoke run)."""
    return run(QUICK_SIZES if quick else SIZES, calls=200 if quick else CALLS)


def main(argv: Sequence[str] | None = None) -> None:
    command(__doc__, benchmark, argv)


if __name__ == "__main__":
    main()


__all__ = ["benchmark", "record_run", "run"]
