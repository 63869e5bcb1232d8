"""A benchmark's result: rows of figures against targets, rendered as a markdown table.

Every benchmark answers with a :class:`Table`; ``python -m bench`` writes them
one after another into ``bench/results.md``, and each module run on its own
prints its table with the command line that made it.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """A figure a benchmark must reach: at least (``higher``) or at most ``limit``."""

    limit: float
    higher: bool
    unit: str = ""

    def __str__(self) -> str:
        return f"{'≥' if self.higher else '≤'} {number(self.limit)}{self.unit}"

    def verdict(self, value: float) -> str:
        """``met``, or ``missed`` with how far the value is from the limit."""
        if (value >= self.limit) if self.higher else (value <= self.limit):
            return "met"
        if self.higher:
            return f"missed: at {value / self.limit:.0%} of the target" if value > 0 else "missed"
        return f"missed: {value / self.limit:.1f}× the limit"


@dataclass(frozen=True)
class Row:
    """One measured figure, with its target when the issue sets one."""

    figure: str
    value: str
    target: str = ""
    verdict: str = ""


@dataclass
class Table:
    """A benchmark's rows, its setup and notes, and how long it took."""

    title: str
    setup: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(
        self, figure: str, value: float, unit: str = "", *, target: Target | None = None
    ) -> float:
        """A measured figure, checked against its target when there is one."""
        self.rows.append(
            Row(
                figure,
                f"{number(value)}{unit}",
                str(target) if target else "",
                target.verdict(value) if target else "",
            )
        )
        return value

    def text(
        self, figure: str, value: str, *, target: Target | None = None, verdict: str = ""
    ) -> None:
        """A figure that is not a number (a refusal, a count of states)."""
        self.rows.append(Row(figure, value, str(target) if target else "", verdict))

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.setup:
            lines += [self.setup, ""]
        lines += ["| figure | measured | target | verdict |", "|---|---|---|---|"]
        lines += [
            f"| {cell(r.figure)} | {cell(r.value)} | {cell(r.target)} | {cell(r.verdict)} |"
            for r in self.rows
        ]
        lines.append("")
        lines += [f"- {note}" for note in self.notes]
        lines.append(f"- ran {self.seconds:.0f} s")
        return "\n".join(lines) + "\n"

    def verdicts(self) -> list[str]:
        return [row.verdict for row in self.rows if row.verdict]


def invocation() -> str:
    """The command line that is running, as it was typed: ``python -m bench.e2e --quick``."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is not None and spec.name:
        start = ["-m", spec.name.removesuffix(".__main__")]
    else:
        start = [sys.argv[0]]
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *start, *sys.argv[1:]])


def command(
    description: str | None, benchmark: Callable[..., Table], argv: Sequence[str] | None
) -> None:
    """One benchmark's command line: ``python -m bench.<name> [--quick]``."""
    parser = argparse.ArgumentParser(description=(description or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run at small sizes")
    options = parser.parse_args(argv)
    print(benchmark(quick=options.quick).markdown())
    print(f"command: {invocation()}")


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def number(value: float) -> str:
    """A figure with as many digits as it is worth."""
    if value != value:  # NaN: not measured
        return "n/a"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def ratio(ours: float, theirs: float) -> float:
    """How many times ``ours`` is ``theirs`` (NaN when ``theirs`` is nothing)."""
    return ours / theirs if theirs else float("nan")


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of the samples lie (nearest rank)."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


__all__ = [
    "Row",
    "Table",
    "Target",
    "command",
    "invocation",
    "number",
    "percentile",
    "ratio",
]
