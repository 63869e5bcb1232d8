"""All six benchmarks, in order, and their results table: ``python -m bench [--quick]``.

1. period close (:mod:`bench.close`), 2. end to end at 200 ms latency
(:mod:`bench.e2e`), 3. the zero-latency ceiling (:mod:`bench.ceiling`),
4. the aggregator (:mod:`bench.aggregator`), 5. a reconciliation beside an export
(:mod:`bench.reconcile`), 6. fairness: a small period beside a big one, and two
tenants' big periods (:mod:`bench.fairness`). Each measures the product and its
peers in the same run, on its own private Redis and sandbox, and prints its
table as soon as it is done. The full run writes ``bench/results.md``: the
machine (``nproc``, load average at start and end), every table with its
targets and verdicts, and the command line. ``--quick`` runs small sizes as a
smoke test and writes only where ``--out`` says.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import aggregator, ceiling, close, e2e, fairness, reconcile
from bench.report import Table, cell, invocation

RESULTS = Path(__file__).resolve().parent / "results.md"
BENCHMARKS: tuple[tuple[str, str, Callable[..., Table]], ...] = (
    ("close", "1. Period close", close.benchmark),
    ("e2e", "2. End to end at 200 ms latency", e2e.benchmark),
    ("ceiling", "3. Zero-latency ceiling", ceiling.benchmark),
    ("aggregator", "4. Aggregator", aggregator.benchmark),
    ("reconcile", "5. Reconciliation beside an export", reconcile.benchmark),
    ("fairness", "6. Fairness", fairness.benchmark),
)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def processors() -> int:
    """What ``nproc`` prints: the processors this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def revision() -> str:
    """The commit measured, and whether the tree had changes on top of it."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, check=True
            )
            .stdout.decode()
            .strip()
        )
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} (with uncommitted changes)" if changed else commit


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def targets(tables: Sequence[Table]) -> list[str]:
    lines = ["| benchmark | figure | measured | target | verdict |", "|---|---|---|---|---|"]
    for table in tables:
        for row in table.rows:
            if row.target:
                lines.append(
                    f"| {cell(table.title)} | {cell(row.figure)} | {cell(row.value)} "
                    f"| {cell(row.target)} | {cell(row.verdict)} |"
                )
    return lines


def document(
    tables: Sequence[Table], *, started: datetime, load_start: str, load_end: str, seconds: float
) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{invocation()}` on {started:%Y-%m-%d %H:%M} UTC, in "
        f"{duration(seconds)}. The product and its peers are measured in the same run, so the "
        "ratios hold even when the machine's speed drifts; absolute figures move with its load.",
        "",
        "| machine | |",
        "|---|---|",
        f"| `nproc` | {processors()} ({cpu_model()}, {memory_gib():.1f} GiB) |",
        f"| load average at start (1 / 5 / 15 min) | {load_start} |",
        f"| load average at end | {load_end} |",
        f"| Python | {platform.python_version()} |",
        f"| commit | {revision()} |",
        f"| command | `{invocation()}` |",
        "",
        "## Targets (issues 8 and 17)",
        "",
        *targets(tables),
        "",
        "## Benchmarks",
        "",
    ]
    for table in tables:
        lines.append(table.markdown())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write the results (default: {RESULTS.name} for a full run, "
        "nowhere for --quick)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[name for name, _, _ in BENCHMARKS],
        help="run only this benchmark (may be repeated)",
    )
    options = parser.parse_args(argv)
    out = options.out or (None if options.quick else RESULTS)
    started = datetime.now(UTC)
    load_start = load()
    began = time.perf_counter()
    print(f"{invocation()}: nproc {processors()}, load average {load_start}", flush=True)
    tables: list[Table] = []
    failed = False
    for name, title, benchmark in BENCHMARKS:
        if options.only and name not in options.only:
            continue
        print(f"\n== {title} ...", flush=True)
        clock = time.perf_counter()
        try:
            table = benchmark(quick=options.quick)
        except Exception as error:  # one broken benchmark must not lose the others' figures
            failed = True
            table = Table(title, notes=[f"did not finish: {type(error).__name__}: {error}"])
            table.seconds = time.perf_counter() - clock
        tables.append(table)
        print(table.markdown(), flush=True)
    seconds = time.perf_counter() - began
    load_end = load()
    text = document(
        tables, started=started, load_start=load_start, load_end=load_end, seconds=seconds
    )
    if out is not None:
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    print(f"ran {duration(seconds)}; load average {load_start} at start, {load_end} at end")
    print(f"command: {invocation()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
