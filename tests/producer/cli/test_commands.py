"""The command line's run commands: close-period, export, requeue, --preview and api."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from celery import Celery
from typer.testing import CliRunner

from producer.cli import commands as cli_module
from producer.cli.commands import cli, main
from producer.cli.localservices import free_port
from producer.operations.samples import sample_invoices
from tests.producer.http.test_api import CONFIG, TOKEN, as_json, published
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.documents.finvoice import validate_finvoice
from worker.documents.invoice import Invoice
from worker.documents.opterxml import serialize_invoice
from worker.state.keys import State
from worker.state.store import StatusStore, open_store

PERIOD = [i for i in sample_invoices(9) if i.customer.customer_number != "1004"]


@dataclass
class Cli:
    runner: CliRunner
    env: dict[str, str]
    store: StatusStore
    app: Celery

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(cli, list(args), env=self.env)
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    def tasks(self) -> list[tuple[str, str]]:
        return published(self.app)


def said(text: str) -> str:
    """Rich wraps long lines: compare words, not line breaks."""
    return " ".join(text.split())


@pytest.fixture
def run_cli(
    tmp_path: Path, fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    config = tmp_path / "exports.toml"
    config.write_text(CONFIG, encoding="utf-8")
    env = {
        "HEEROS_EXPORT_CONFIG": str(config),
        "HEEROS_BROKER_URL": "memory://",
        "HEEROS_API_TOKEN": "",
        "KEY": "client-key",
    }
    monkeypatch.setattr(cli_module, "open_store", lambda settings: StatusStore(fake_redis))
    app = create_app(Settings(broker_url="memory://"))
    published(app)
    yield Cli(CliRunner(), env, StatusStore(fake_redis, prefix="hx"), app)


def write_period(folder: Path, invoices: list[Invoice]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for invoice in invoices:
        (folder / f"{invoice.number}.xml").write_bytes(serialize_invoice(invoice))
    return folder


def test_close_period_prints_the_run_and_queues_its_invoices(run_cli: Cli, tmp_path: Path) -> None:
    folder = write_period(tmp_path / "period", PERIOD)
    result = run_cli("close-period", "2026-11", "--invoices", str(folder))
    assert result.stdout == "2026-11-0001\n"
    assert "invoices go to export Heeros (strict)" in said(result.stderr)
    assert len(run_cli.tasks()) == len(PERIOD)
    assert run_cli.store.period_run("2026-11") == "2026-11-0001"


def test_close_period_twice_answers_with_the_same_run(run_cli: Cli, tmp_path: Path) -> None:
    folder = write_period(tmp_path / "period", PERIOD)
    run_cli("close-period", "2026-11", "--invoices", str(folder))
    run_cli.tasks()
    again = run_cli("close-period", "2026-11", "--invoices", str(folder))
    assert again.stdout == "2026-11-0001\n"
    assert "period 2026-11 was closed before" in said(again.stderr)
    assert run_cli.tasks() == []


def test_an_invalid_invoice_is_refused_alone(run_cli: Cli, tmp_path: Path) -> None:
    invoices = as_json(PERIOD[:3])
    invoices[2]["due_date"] = "soon"
    path = tmp_path / "period.json"
    path.write_text(json.dumps({"period": "2026-11", "invoices": invoices}))
    result = run_cli("close-period", "2026-11", "--invoices", str(path))
    assert f"refused: invoice {PERIOD[2].number}: due_date:" in said(result.stderr)
    assert len(run_cli.tasks()) == 2
    record = run_cli.store.item(result.stdout.strip(), f"{PERIOD[2].number}/0")
    assert record is not None and record.state is State.FAILED


def test_a_period_without_a_valid_invoice_is_not_closed(run_cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "period.json"
    path.write_text(json.dumps({"invoices": [{"number": "1"}]}))
    result = run_cli("close-period", "2026-11", "--invoices", str(path), code=2)
    assert "no valid invoice (1 refused): nothing was closed" in said(result.stderr)
    assert "refused: invoice 1:" in said(result.stderr)
    assert run_cli.store.period_run("2026-11") is None


def test_close_period_needs_the_export_configuration(run_cli: Cli, tmp_path: Path) -> None:
    del run_cli.env["HEEROS_EXPORT_CONFIG"]
    folder = write_period(tmp_path / "period", PERIOD[:1])
    result = run_cli("close-period", "2026-11", "--invoices", str(folder), code=2)
    assert "HEEROS_EXPORT_CONFIG" in result.stderr


def test_preview_writes_valid_finvoice_files_and_sends_nothing(
    run_cli: Cli, tmp_path: Path
) -> None:
    folder = write_period(tmp_path / "period", PERIOD)
    out = tmp_path / "preview"
    result = run_cli("close-period", "2026-11", "--invoices", str(folder), "--preview", str(out))
    run = result.stdout.strip()
    assert "nothing was sent" in said(result.stderr)
    assert "invoices would go to export Heeros (API)" in said(result.stderr)
    written = sorted(out.rglob("*.xml"))
    assert sorted(p.stem for p in written) == sorted(i.number for i in PERIOD)
    assert {p.parent.name for p in written} == {"Heeros-API", "Heeros-strict"}
    for path in written:
        validate_finvoice(path.read_bytes(), invoice_number=path.stem)
    assert run_cli.tasks() == []
    record = run_cli.store.run_record(run)
    assert record is not None and record.preview
    assert run_cli.store.period_run("2026-11") is None


def test_export_single_invoices_and_whole_periods(run_cli: Cli, tmp_path: Path) -> None:
    folder = write_period(tmp_path / "period", PERIOD)
    run_cli("close-period", "2026-11", "--invoices", str(folder))
    run_cli.tasks()
    first, second, third = (i.number for i in PERIOD[:3])
    result = run_cli("export", "--invoice", first, second, "--invoice", third)
    assert result.stdout == "2026-11-0002\n"
    assert sorted(item.partition("/")[0] for _, item in run_cli.tasks()) == [first, second, third]
    result = run_cli("export", "--period", "2026-11")
    assert result.stdout == "2026-11-0003\n"
    assert len(run_cli.tasks()) == len(PERIOD)
    out = tmp_path / "again"
    result = run_cli("export", "--invoice", first, "--preview", str(out))
    assert run_cli.tasks() == [] and len(list(out.rglob("*.xml"))) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either --period P or --invoice N"),
        (("--period", "2026-11", "--invoice", "1"), "give either --period P or --invoice N"),
        (("--invoice", "555555"), "no copy is kept of 555555"),
        (("--period", "2030-01"), "period: 2030-01 has no invoices"),
    ],
)
def test_bad_exports_exit_2(run_cli: Cli, args: tuple[str, ...], message: str) -> None:
    result = run_cli("export", *args, code=2)
    assert message in said(result.stderr)


def test_requeue(run_cli: Cli, tmp_path: Path) -> None:
    folder = write_period(tmp_path / "period", PERIOD[:3])
    run = run_cli("close-period", "2026-11", "--invoices", str(folder)).stdout.strip()
    run_cli.tasks()
    item = f"{PERIOD[0].number}/0"
    run_cli.store.transition(run, item, State.FAILED, export_index=0, kind="unavailable")
    result = run_cli("requeue", run)
    assert result.stdout == f"run {run}: 1 failed and 0 unconfirmed invoices queued again\n"
    assert run_cli.tasks() == [(run, item)]
    assert "no run 2026-11-0042" in run_cli("requeue", "2026-11-0042", code=2).stderr
    preview = run_cli(
        "close-period", "2026-12", "--invoices", str(folder), "--preview", str(tmp_path / "p")
    ).stdout.strip()
    assert "is a preview" in said(run_cli("requeue", preview, code=2).stderr)


def test_status_shows_the_warnings_of_a_run(run_cli: Cli, tmp_path: Path) -> None:
    folder = write_period(tmp_path / "period", list(sample_invoices(4)))
    run = run_cli("close-period", "2026-11", "--invoices", str(folder)).stdout.strip()
    assert "customer 1004: group 'Nowhere' has no Heeros export" in said(
        run_cli("status", run).stdout
    )


def test_api_needs_a_token_unless_anonymous_on_loopback(
    run_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append(options))
    result = run_cli("api", code=2)
    assert "HEEROS_API_TOKEN is not set" in said(result.stderr)
    result = run_cli("api", "--allow-anonymous", "--host", "0.0.0.0", code=2)
    assert "loopback" in result.stderr
    run_cli("api", "--allow-anonymous", "--port", "8123")
    run_cli.env["HEEROS_API_TOKEN"] = TOKEN
    run_cli("api", "--host", "0.0.0.0")
    assert [(s["host"], s["port"]) for s in served] == [("127.0.0.1", 8123), ("0.0.0.0", 8000)]


def test_api_trusts_proxy_headers_only_when_asked(
    run_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append(options))
    run_cli.env["HEEROS_API_TOKEN"] = TOKEN
    run_cli("api")
    run_cli("api", "--proxy-headers")
    run_cli("api", "--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/8,192.0.2.1")
    assert [(s["proxy_headers"], s.get("forwarded_allow_ips")) for s in served] == [
        (False, None),
        (True, None),
        (True, "10.0.0.0/8,192.0.2.1"),
    ]
    result = run_cli("api", "--forwarded-allow-ips", "*", code=2)
    assert "--forwarded-allow-ips needs --proxy-headers" in said(result.stderr)
    assert len(served) == 3


def test_api_refuses_a_short_token_in_one_line(
    run_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append(options))
    run_cli.env["HEEROS_API_TOKEN"] = "Zq-short"
    result = run_cli("api", code=2)
    assert served == []
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: HEEROS_API_TOKEN") and "at least 16 characters" in line
    assert "Zq-short" not in result.stderr + result.stdout
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "args",
    [
        ("status", "2026-11-0001"),
        ("status", "2026-11-0001", "--watch"),
        ("runs",),
        ("requeue", "2026-11-0001"),
    ],
)
def test_redis_down_is_one_line_naming_the_url_without_its_password(
    run_cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setattr(cli_module, "open_store", open_store)
    for name, value in run_cli.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HEEROS_REDIS_URL", f"redis://:redis-pw-9931@127.0.0.1:{port}/0")
    monkeypatch.setattr(sys, "argv", ["heeros-export", *args])
    # Only what the command prints: no log handler left behind by an earlier test.
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.NullHandler()])
    with pytest.raises(SystemExit) as ended:
        main()
    assert ended.value.code == 2
    said = capsys.readouterr()
    (line,) = said.err.splitlines()
    assert line.startswith("error: ") and "unreachable" in line
    assert f"redis://:***@127.0.0.1:{port}/0" in line
    assert "redis-pw-9931" not in said.err + said.out
    assert "Traceback" not in said.err
