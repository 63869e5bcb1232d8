"""The ``heeros-export`` command line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import typer
import uvicorn
from rich.markup import escape

from producer.cli.console import (
    console,
    errors,
    fail,
    follow_reconciliation,
    line,
    print_reconciliation,
    print_reconciliation_report,
    print_summary,
    show_progress,
)
from producer.cli.demo import run_demo
from producer.cli.environment import (
    error_line,
    redis_named,
    refuse,
    settings_of_environment,
)
from producer.cli.runreport import PreviewDir, check_names, report_run
from producer.http.api import create_api
from producer.operations.actions import LISTED, Operations, Refused
from producer.operations.intake import Intake, read_path
from producer.operations.reconcile import Reconciler
from producer.operations.samples import sample_invoices
from producer.operations.streams import StreamKind, file_kind, read_batches
from sandbox.server import command as sandbox_command
from worker.celery.app import create_app, run_worker
from worker.config import ExportConfig, load_export_config
from worker.config.settings import Settings
from worker.documents.opterxml import serialize_invoice
from worker.errors import ExportError, PermanentError, TransientError
from worker.logs import configure_logging
from worker.state.aggregator import RunState, problems, recent_runs, summarize
from worker.state.store import StatusStore, open_store
from worker.tracing import configure_tracing

cli = typer.Typer(
    help="Export invoices from Opter to Heeros, asynchronously.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _store(settings: Settings) -> StatusStore:
    return open_store(settings)


@cli.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    help="Start a Celery worker of the exporter; further arguments go to Celery.",
)
def worker(ctx: typer.Context) -> None:
    run_worker(settings_of_environment(), ctx.args)


def _settings_and_config() -> tuple[Settings, ExportConfig]:
    settings = settings_of_environment()
    if settings.export_config is None:
        raise fail("set HEEROS_EXPORT_CONFIG to the export configuration file")
    return settings, load_export_config(settings.export_config)


def _operations(settings: Settings, config: ExportConfig) -> Operations:
    configure_tracing("heeros-export-cli")  # a close's spans, when OTEL_* asks for them
    return Operations(create_app(settings), _store(settings), config)


@cli.command("close-period", help="Close a period: export its invoices once; prints the run id.")
def close_period(
    period: Annotated[str, typer.Argument(help="The invoice period, e.g. 2026-11.")],
    invoices: Annotated[
        Path,
        typer.Option(
            help="A folder of Opter XML files, a JSON file, or a stream read 1,000 invoices "
            "at a time: NDJSON (.ndjson, .jsonl) or a tar archive of Opter XML files "
            "(.tar, .tar.gz, .tgz)."
        ),
    ],
    preview: PreviewDir = None,
) -> None:
    check_names(period=period)
    kind = file_kind(invoices.name) if invoices.is_file() else None
    try:
        settings, config = _settings_and_config()
        for warning in config.warnings:
            errors.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
        if kind is not None:
            _close_stream(settings, config, period, invoices, kind, preview)
            return
        intake = read_path(invoices)
        accepted = _operations(settings, config).close(
            period, intake, preview=preview is not None, out_dir=preview
        )
    except Refused as refused:
        for rejection in refused.rejected[:LISTED]:
            errors.print(f"[red]refused:[/red] {escape(str(rejection.error))}", highlight=False)
        raise refuse(f"{invoices}: {refused.detail}") from None
    except PermanentError as error:  # a transient one ends in main(), naming Redis
        raise refuse(str(error)) from None
    if accepted.existing:
        errors.print(
            f"[yellow]period {period} was closed before:[/yellow] its run is {accepted.run}; "
            "nothing was exported again (heeros-export export --period to export it again)",
            highlight=False,
        )
    report_run(accepted, read=intake.count, refused=len(intake.rejected), out_dir=preview)


def _close_stream(
    settings: Settings,
    config: ExportConfig,
    period: str,
    path: Path,
    kind: StreamKind,
    preview: Path | None,
) -> None:
    """``close-period`` of an NDJSON file or an archive: recorded a batch at a time."""
    read = 0

    def batches(file: IO[bytes]) -> Iterator[Intake]:
        nonlocal read
        for batch in read_batches(file, kind, source=str(path)):
            read += batch.count
            yield batch

    try:
        with path.open("rb") as file:
            accepted = _operations(settings, config).close_stream(
                period, batches(file), preview=preview is not None, out_dir=preview
            )
    except OSError as exc:
        raise refuse(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if accepted.existing:
        errors.print(
            f"[yellow]period {period} was closed before:[/yellow] its run is {accepted.run}; "
            "nothing was exported again (heeros-export export --period to export it again)",
            highlight=False,
        )
    report_run(accepted, read=read, refused=accepted.failed, out_dir=preview)


@cli.command(
    help="Export invoices again: a whole closed period, single invoices, or invoices given "
    "anew (--invoices PATH: corrected or late ones, a new run of their period)."
)
def export(
    numbers: Annotated[
        list[str] | None, typer.Argument(help="Invoice numbers (also as --invoice N).")
    ] = None,
    period: Annotated[
        str | None,
        typer.Option(
            "--period", help="A closed period: all its invoices (with --invoices: the run's)."
        ),
    ] = None,
    invoice: Annotated[
        list[str] | None, typer.Option("--invoice", help="An invoice number; may be repeated.")
    ] = None,
    given: Annotated[
        Path | None,
        typer.Option(
            "--invoices",
            metavar="PATH",
            help="A folder of Opter XML files or a JSON file, as close-period takes: the "
            "invoices, corrected or late, exported as a new run of their period.",
        ),
    ] = None,
    preview: PreviewDir = None,
) -> None:
    chosen = [*(invoice or []), *(numbers or [])]
    if given is not None:
        if chosen:
            raise fail("give either --invoices PATH or invoice numbers, not both")
        _export_given(given, period=period, preview=preview)
        return
    if (period is None) == (not chosen):
        raise fail("give either --period P or --invoice N ..., one of the two")
    check_names(period=period, numbers=chosen)
    try:
        settings, config = _settings_and_config()
        accepted = _operations(settings, config).export(
            chosen or None, period=period, preview=preview is not None, out_dir=preview
        )
    except Refused as refused:
        raise refuse(refused.detail) from None
    except PermanentError as error:  # a transient one ends in main(), naming Redis
        raise refuse(str(error)) from None
    report_run(accepted, read=accepted.total, refused=len(accepted.rejected), out_dir=preview)


def _export_given(path: Path, *, period: str | None, preview: Path | None) -> None:
    """``export --invoices PATH``: corrected or late invoices, a new run of their period."""
    check_names(period=period)
    try:
        settings, config = _settings_and_config()
        intake = read_path(path)
        accepted = _operations(settings, config).export_invoices(
            intake, period=period, preview=preview is not None, out_dir=preview
        )
    except Refused as refused:
        for rejection in refused.rejected[:LISTED]:
            errors.print(f"[red]refused:[/red] {escape(str(rejection.error))}", highlight=False)
        raise refuse(f"{path}: {refused.detail}") from None
    except PermanentError as error:  # a transient one ends in main(), naming Redis
        raise refuse(str(error)) from None
    report_run(accepted, read=intake.count, refused=accepted.failed, out_dir=preview)


@cli.command(help="Queue a run's failed and unconfirmed invoices again (only those).")
def requeue(run: Annotated[str, typer.Argument(help="The run id, e.g. 2026-11-0001.")]) -> None:
    try:
        settings, config = _settings_and_config()
        done = _operations(settings, config).requeue(run)
    except Refused as refused:
        raise fail(refused.detail) from None
    except PermanentError as error:  # a transient one ends in main(), naming Redis
        raise fail(str(error)) from None
    print(
        f"run {run}: {done.failed} failed and {done.unconfirmed} unconfirmed invoices queued again"
    )


@cli.command(help="Prove a period complete in Heeros: every invoice there once, final.")
def reconcile(
    period: Annotated[str | None, typer.Argument(help="The closed period, e.g. 2026-11.")] = None,
    export_name: Annotated[
        str | None, typer.Option("--export", help="Only this export (Heeros tenant).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    show: Annotated[
        str | None, typer.Option("--show", metavar="ID", help="Show a reconciliation's report.")
    ] = None,
    listing: Annotated[bool, typer.Option("--list", help="The recent reconciliations.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the end; print the report.")
    ] = False,
    act: Annotated[
        str | None,
        typer.Option(
            "--act",
            metavar="ID",
            help="Export a finished report's missing invoices again; poll its not-final ones.",
        ),
    ] = None,
) -> None:
    chosen = [period is not None, show is not None, listing, act is not None]
    if sum(chosen) != 1:
        raise fail("give one of PERIOD, --show ID, --list or --act ID")
    if period is not None:
        check_names(period=period)
    try:
        settings, config = _settings_and_config()
        app = create_app(settings)
        store = _store(settings)
        reconciler = Reconciler(app, store, config, confirm_deadline_s=settings.confirm_deadline_s)
        if listing:
            views = reconciler.recent(20)
            if as_json:
                print(json.dumps([v.model_dump() for v in views], indent=2))
            for view in [] if as_json else views:
                print_reconciliation(view)
            return
        if act is not None:
            acted = reconciler.act(act, Operations(app, store, config))
            print(
                acted.model_dump_json(indent=2)
                if as_json
                else (
                    f"{act}: {len(acted.exported)} missing invoices exported again"
                    + (f" (run {acted.run})" if acted.run else "")
                    + f", {acted.repolled} polled again"
                )
            )
            return
        name = show
        if period is not None:
            started = reconciler.start(period, export_name)
            name = started.reconciliation
            if not wait:
                print(started.model_dump_json(indent=2) if as_json else name)
                return
            follow_reconciliation(reconciler, name)
        assert name is not None
        report = reconciler.report(name)
    except Refused as refused:
        raise refuse(refused.detail) from None
    except PermanentError as error:  # a transient one ends in main(), naming Redis
        raise refuse(str(error)) from None
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        print_reconciliation_report(report)


@cli.command(help="Serve the HTTP API the TMS calls (its OpenAPI document is /openapi.json).")
def api(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8000,
    allow_anonymous: Annotated[
        bool,
        typer.Option(
            "--allow-anonymous",
            help="Without HEEROS_API_TOKEN, accept calls without a token (loopback only).",
        ),
    ] = False,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            "--proxy-headers",
            help="Behind a TLS-terminating proxy or ingress: take the client's address and "
            "https from X-Forwarded-For and X-Forwarded-Proto, sent by a trusted proxy "
            "(--forwarded-allow-ips). The session cookie is then Secure.",
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            metavar="ADDRESSES",
            help="With --proxy-headers: the proxies trusted, comma-separated addresses or "
            "networks (10.0.0.0/8), or * for any; by default 127.0.0.1 and ::1.",
        ),
    ] = None,
) -> None:
    if forwarded_allow_ips is not None and not proxy_headers:
        raise refuse("--forwarded-allow-ips needs --proxy-headers")
    settings = settings_of_environment()
    token = settings.api_token.get_secret_value().strip() if settings.api_token else ""
    if allow_anonymous and not token and host not in LOOPBACK:
        raise fail(f"--allow-anonymous serves only a loopback address, not {host}")
    configure_logging("INFO")
    try:
        application = create_api(settings, allow_anonymous=allow_anonymous)
    except ExportError as error:
        raise fail(str(error)) from None
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        log_config=None,
    )


@cli.command(help="A run's figures; --watch shows a live progress bar.")
def status(
    run: str,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the run to its end.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    store = _store(settings_of_environment())
    summary = show_progress(store, run) if watch else summarize(store, run)
    if summary is None:
        raise fail(f"no run {run!r}")
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
    for summary in recent_runs(_store(settings_of_environment()), limit=limit):
        console.print(line(summary), highlight=False)


@cli.command(
    help="Write N realistic sample invoices as Opter XML files (or one JSON or NDJSON file)."
)
def sample(
    count: Annotated[int, typer.Option(help="How many invoices.")] = 100,
    out: Annotated[
        Path, typer.Option(help="The folder (or .json or .ndjson file) to write.")
    ] = Path("out"),
    period: Annotated[str, typer.Option(help="The invoice period.")] = "2026-11",
    first: Annotated[int, typer.Option(help="The first invoice number.")] = 100001,
) -> None:
    invoices = sample_invoices(count, period=period, first=first)
    if out.suffix == ".json":
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "period": period,
            "invoices": [i.model_dump(mode="json", round_trip=True) for i in invoices],
        }
        out.write_text(json.dumps(payload, ensure_ascii=False))
    elif file_kind(out.name) is StreamKind.NDJSON:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as file:
            for invoice in invoices:
                line = json.dumps(invoice.model_dump(mode="json", round_trip=True))
                file.write(line + "\n")
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
    sys.exit(run_demo(count=count, latency_ms=latency_ms))


cli.command("sandbox", help="Run the Heeros sandbox server.")(sandbox_command)


def main() -> None:
    """``heeros-export``: Redis or the broker out of reach ends any command in one line,
    and so does any other error of the tree a command let through (a run id that is not
    one, given to ``status``), never with a traceback."""
    try:
        cli()
    except TransientError as error:
        error_line(f"{error} ({redis_named()})")
        sys.exit(2)
    except PermanentError as error:
        error_line(str(error))
        sys.exit(2)


if __name__ == "__main__":
    main()
