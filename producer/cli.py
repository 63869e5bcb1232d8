"""The ``heeros-export`` command line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from producer.intake import read_path
from producer.runs import start_run
from producer.samples import sample_invoices
from worker.aggregator import RunState, RunSummary, problems, recent_runs, summarize
from worker.errors import ExportError
from worker.exportconfig import load_export_config
from worker.opterxml import serialize_invoice
from worker.settings import Settings
from worker.store import StatusStore, connect

cli = typer.Typer(
    help="Export invoices from Opter to Heeros, asynchronously.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


def _store(settings: Settings) -> StatusStore:
    return StatusStore(connect(settings.redis_url), prefix=settings.key_prefix)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)


@cli.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help="Start a Celery worker of the exporter; further arguments go to Celery.",
)
def worker(ctx: typer.Context) -> None:
    from worker.app import create_app
    from worker.tasks import POLL_QUEUE, SEND_QUEUE

    settings = Settings()
    app = create_app(settings)
    argv = ["worker", "-Q", f"{SEND_QUEUE},{POLL_QUEUE}", "-P", "threads",
            "-c", str(settings.concurrency), "-E", *ctx.args]
    app.worker_main(argv=argv)


@cli.command("close-period", help="Close a period: export its invoices; prints the run id.")
def close_period(
    period: Annotated[str, typer.Argument(help="The invoice period, e.g. 2026-11.")],
    invoices: Annotated[Path, typer.Option(help="A folder of Opter XML files or a JSON file.")],
) -> None:
    from worker.app import create_app

    settings = Settings()
    try:
        if settings.export_config is None:
            raise _fail("set HEEROS_EXPORT_CONFIG to the export configuration file")
        config = load_export_config(settings.export_config)
        intake = read_path(invoices)
        app = create_app(settings)
        started = start_run(app, _store(settings), config, intake.invoices, period=period,
                            rejected=intake.rejected)
    except ExportError as error:
        raise _fail(str(error)) from None
    for warning in config.warnings + started.warnings:
        errors.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    for rejection in intake.rejected:
        errors.print(f"[red]refused:[/red] {rejection.error}", highlight=False)
    print(started.run)


def _line(summary: RunSummary) -> str:
    colour = {"complete": "green", "failed": "grey62", "running": "cyan"}[summary.state.value]
    return (f"[{colour}]{summary.run:<16}[/{colour}] {summary.period:<10} "
            f"total {summary.total:>7}  exported {summary.exported:>7}  "
            f"failed {summary.failed:>6}  in progress {summary.in_progress:>6}  "
            f"{summary.state.value}")


def show_progress(store: StatusStore, run: str, *, interval: float = 0.5,
                  timeout: float | None = None) -> RunSummary:
    """Opter's export window: exported / total, green when complete, grey when failed."""
    summary = summarize(store, run)
    if summary is None:
        raise _fail(f"no run {run!r}")
    started = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(complete_style="cyan",
                  finished_style="green"), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task(f"run {run}", total=summary.total)
        while True:
            summary = summarize(store, run)
            assert summary is not None
            done = summary.exported + summary.failed
            progress.update(task, completed=done, description=f"run {run}: "
                            f"{summary.exported} exported, {summary.failed} failed")
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
        console.print(f"  export {name}: " + ", ".join(f"{k} {v}" for k, v in
                                                       sorted(counts.items())), highlight=False)
    if summary.failed:
        for record in problems(store, summary.run, count=20):
            console.print(f"  [red]{record.number}[/red] ({record.state.value}): "
                          f"{record.message}", highlight=False)


@cli.command(help="A run's figures; --watch shows a live progress bar.")
def status(
    run: str,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the run to its end.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    store = _store(Settings())
    summary = show_progress(store, run) if watch else summarize(store, run)
    if summary is None:
        raise _fail(f"no run {run!r}")
    if as_json:
        data = summary.as_dict()
        data["problems"] = [r.as_dict() for r in problems(store, run, count=50)]
        print(json.dumps(data, indent=2))
    else:
        print_summary(store, summary)
    if summary.state is RunState.FAILED:
        raise typer.Exit(1)


@cli.command(help="The recent runs, one line each.")
def runs(limit: Annotated[int, typer.Option(help="How many runs.")] = 20) -> None:
    for summary in recent_runs(_store(Settings()), limit=limit):
        console.print(_line(summary), highlight=False)


@cli.command(help="Write N realistic sample invoices as Opter XML files (or one JSON file).")
def sample(
    count: Annotated[int, typer.Option(help="How many invoices.")] = 100,
    out: Annotated[Path, typer.Option(help="The folder (or .json file) to write.")] = Path("out"),
    period: Annotated[str, typer.Option(help="The invoice period.")] = "2026-11",
    first: Annotated[int, typer.Option(help="The first invoice number.")] = 100001,
) -> None:
    invoices = sample_invoices(count, period=period, first=first)
    if out.suffix == ".json":
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"period": period,
                   "invoices": [i.model_dump(mode="json", round_trip=True) for i in invoices]}
        out.write_text(json.dumps(payload, ensure_ascii=False))
    else:
        out.mkdir(parents=True, exist_ok=True)
        for invoice in invoices:
            (out / f"{invoice.number}.xml").write_bytes(serialize_invoice(invoice))
    print(f"wrote {count} invoices to {out}")


@cli.command(help="Run a whole export on this machine: Redis, the sandbox, a worker, a period.")
def demo(
    count: Annotated[int, typer.Option(help="Invoices in the sample period.")] = 300,
    latency_ms: Annotated[int, typer.Option(help="The sandbox's answer time.")] = 100,
) -> None:
    from producer.demo import run_demo

    sys.exit(run_demo(count=count, latency_ms=latency_ms))


def _register_sandbox() -> None:
    try:
        from sandbox.server import command
    except ImportError:  # pragma: no cover - the sandbox ships with the package
        return
    cli.command("sandbox", help="Run the Heeros sandbox server.")(command)


_register_sandbox()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
