"""What the command line prints: run lines, the live progress bar, summaries, errors.

Standard output carries only what a script reads (a run id, JSON); everything for
a person goes to standard error or is drawn by rich.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producer.operations.actions import run_warnings
from producer.operations.reconcile import Reconciler, ReconciliationReport, ReconciliationView
from producer.operations.views import RunAccepted
from worker.state.aggregator import Pace, RunState, RunSummary, pace, problems, summarize
from worker.state.store import StatusStore

console = Console()
errors = Console(stderr=True)


def report(accepted: RunAccepted, *, out_dir: Path | None = None) -> None:
    """What a run did, on standard error; standard output gets only the run id."""
    for rejection in accepted.rejected:
        errors.print(f"[red]refused:[/red] {rejection.reason}", highlight=False)
    for warning in accepted.warnings:
        errors.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if accepted.preview:
        where = f" in {out_dir}" if out_dir is not None else ""
        errors.print(
            f"preview run {accepted.run}: nothing was sent; {accepted.total - accepted.failed} "
            f"Finvoice documents built{where} (a folder per export when there are several), "
            f"{accepted.failed} failed",
            highlight=False,
        )
    verb = "would go" if accepted.preview else "go"
    for name, count in accepted.per_export.items():
        errors.print(f"  {count} invoices {verb} to export {name}", highlight=False)
    print(accepted.run)


def fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)


def line(summary: RunSummary) -> str:
    colour = {"complete": "green", "failed": "grey62", "running": "cyan"}[summary.state.value]
    return (
        f"[{colour}]{summary.run:<16}[/{colour}] {summary.period:<10} "
        f"total {summary.total:>7}  exported {summary.exported:>7}  "
        f"failed {summary.failed:>6}  in progress {summary.in_progress:>6}  "
        f"{summary.state.value}"
    )


def pace_line(found: Pace) -> str:
    """``"12 invoices/s, 3 min 20 s left"`` while a run goes on; empty once it has ended."""
    if found.rate is None and found.left_s is None:
        return ""
    return f"{found.rate_text}, {found.left_text} left"


def show_progress(
    store: StatusStore, run: str, *, interval: float = 0.5, timeout: float | None = None
) -> RunSummary:
    """Opter's export window: exported / total, green when complete, grey when failed;
    while the run goes on, its rate over the last minute and the time left at that rate."""
    summary = summarize(store, run)
    if summary is None:
        raise fail(f"no run {run!r}")
    started = time.monotonic()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(complete_style="cyan", finished_style="green"),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[pace]}"),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"run {run}", total=summary.total, pace="")
        while True:
            summary = summarize(store, run)
            assert summary is not None
            progress.update(
                task,
                completed=summary.exported + summary.failed,
                description=f"run {run}: {summary.exported} exported, {summary.failed} failed",
                pace=pace_line(pace(store, summary)),
            )
            if summary.state is not RunState.RUNNING:
                if summary.state is RunState.FAILED:
                    bar = progress.columns[1]
                    assert isinstance(bar, BarColumn)
                    bar.finished_style = "grey50"
                    progress.refresh()
                break
            if timeout is not None and time.monotonic() - started > timeout:
                break
            time.sleep(interval)
    return summary


def print_summary(store: StatusStore, summary: RunSummary) -> None:
    colour = {"complete": "green", "failed": "grey62", "running": "cyan"}[summary.state.value]
    console.print(f"[{colour}]{summary.statement}[/{colour}]", highlight=False)
    for name, counts in summary.by_export.items():
        console.print(
            f"  export {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
            highlight=False,
        )
    kept = store.run_record(summary.run)
    for warning in run_warnings(kept.extra) if kept else []:
        console.print(f"  [yellow]warning:[/yellow] {warning}", highlight=False)
    if summary.failed:
        for record in problems(store, summary.run, count=20):
            console.print(
                f"  [red]{record.number}[/red] ({record.state.value}): {record.message}",
                highlight=False,
            )


def print_reconciliation(view: ReconciliationView) -> None:
    """A reconciliation in one line: id, period, state, progress and counts."""
    counts = ", ".join(f"{name} {n}" for name, n in view.counts.items() if n)
    print(
        f"{view.reconciliation}  period {view.period}  {view.state}  "
        f"{view.checked}/{view.total} checked" + (f"  ({counts})" if counts else "")
    )


def print_reconciliation_report(report: ReconciliationReport) -> None:
    """A reconciliation's report: its line, then per export the counts and the invoices."""
    print_reconciliation(report)
    for part in report.per_export:
        counts = ", ".join(f"{name} {n}" for name, n in part.counts.items())
        console.print(f"[bold]{escape(part.export)}[/bold]: {counts}", highlight=False)
        for category, found in part.findings.items():
            for f in found:
                said = " ".join(
                    escape(text)
                    for text in (
                        f"heeros={f.heeros_id}" if f.heeros_id else "",
                        f"ours={f.recorded_id}" if f.recorded_id else "",
                        f.heeros_status or "",
                        f"{f.error_code}: {f.error_message}" if f.error_code else "",
                        f.note or "",
                    )
                    if text
                )
                console.print(f"  {category:<10} {escape(f.number)}  {said}", highlight=False)
    print(report.not_listed)


def follow_reconciliation(reconciler: Reconciler, name: str) -> None:
    """Wait for a reconciliation's end, its progress on standard error."""
    while True:
        record = reconciler.recons.record(name)
        if record is None or record.done:
            return
        errors.print(f"{name}: {record.checked}/{record.total} checked", highlight=False)
        time.sleep(1.0)


__all__ = [
    "console",
    "errors",
    "fail",
    "follow_reconciliation",
    "line",
    "pace_line",
    "print_reconciliation",
    "print_reconciliation_report",
    "print_summary",
    "report",
    "show_progress",
]
