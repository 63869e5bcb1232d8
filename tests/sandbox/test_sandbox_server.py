"""The sandbox served by uvicorn over loopback TCP, and its command line."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
import typer
import uvicorn
from starlette.applications import Starlette
from typer.testing import CliRunner
from uvicorn.config import LOGGING_CONFIG

from sandbox import Knobs, create_app, server

if TYPE_CHECKING:
    from tests.sandbox.conftest import Sample

ROOT = Path(__file__).resolve().parents[2]
TENANT = {"tt": "00079", "la": "001"}
OPTIONS = {
    "moveOnlyToLedger": False,
    "sendToCustomer": True,
    "createCustomer": True,
    "updateCustomer": True,
    "createProduct": True,
    "updateProduct": True,
    "createAccountingObjects": True,
}
PROTOCOLS = [
    "h11",
    pytest.param(
        "httptools",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("httptools") is None, reason="httptools is not installed"
        ),
    ),
]


@contextmanager
def served(app: Starlette, http: str = "h11") -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a background thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=http, lifespan="off", log_config=None, access_log=False)
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uvicorn_server.should_exit = True
        thread.join(10)
        sock.close()


def login(http: httpx.Client, username: str = "demo", key: str = "demo-key") -> dict[str, str]:
    answer = http.post("/auth/login", json={"username": username, "apiKey": key})
    assert answer.status_code == 200, answer.text
    return {"Cookie": f"LtpaToken={answer.json()['token']}"}


def send_body(content: str, reference: str) -> dict[str, Any]:
    return {
        "externalReference": reference,
        "format": "FINVOICE_3_0",
        "encoding": "UTF-8",
        "options": OPTIONS,
        "content": content,
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_login_and_send_over_http(protocol: str, sample: Sample) -> None:
    with (
        served(create_app(Knobs(confirm_after_s=0)), protocol) as url,
        httpx.Client(base_url=url) as http,
    ):
        cookie = login(http)
        answer = http.post(
            "/sales-invoices",
            params=TENANT,
            json=send_body(sample.einvoice().text(), "1001"),
            headers={**cookie, "Idempotency-Key": "k1"},
        )
        assert answer.status_code == 202, answer.text
        invoice_id = answer.json()["invoiceId"]
        status = http.get(f"/sales-invoices/{invoice_id}", params=TENANT, headers=cookie)
        assert status.json()["status"] == "SENDING"


def test_send_to_customer_needs_an_e_invoice_address_over_http(sample: Sample) -> None:
    with (
        served(create_app(Knobs(confirm_after_s=0))) as url,
        httpx.Client(base_url=url) as http,
    ):
        cookie = login(http)
        headers = {**cookie, "Idempotency-Key": "k1"}
        refused = http.post(
            "/sales-invoices",
            params=TENANT,
            json=send_body(sample.text(), "1001"),
            headers=headers,
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["errorCode"] == "VALIDATION_FAILED"
        assert refused.json()["validationErrors"] == [
            {
                "path": "/Finvoice/SellerInformationDetails/InvoiceRecipientDetails",
                "message": "sendToCustomer is true but no e-invoice address is known for "
                "customer '7654321-0': neither the invoice (InvoiceRecipientAddress and "
                "InvoiceRecipientIntermediatorAddress) nor the customer register has one",
            }
        ]
        # Nothing was kept of the refused send: the corrected invoice goes under the same
        # number and the same Idempotency-Key.
        accepted = http.post(
            "/sales-invoices",
            params=TENANT,
            json=send_body(sample.einvoice().text(), "1001"),
            headers=headers,
        )
        assert accepted.status_code == 202, accepted.text
        invoice_id = accepted.json()["invoiceId"]
        status = http.get(f"/sales-invoices/{invoice_id}", params=TENANT, headers=cookie)
        assert status.json()["status"] == "SENDING"
        registers = http.get("/_admin/registers", params=TENANT).json()
        assert registers["customers"]["7654321-0"]["eInvoice"] == {
            "address": "003776543210",
            "operator": "NDEAFIHH",
        }


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_dropped_answer_is_a_transport_error_but_the_invoice_is_stored(
    protocol: str, sample: Sample, caplog: pytest.LogCaptureFixture
) -> None:
    sample.einvoice()
    app = create_app(Knobs(drop_after_store=1.0))
    with served(app, protocol) as url, httpx.Client(base_url=url) as http:
        cookie = login(http)
        with pytest.raises(httpx.TransportError):
            http.post(
                "/sales-invoices",
                params=TENANT,
                json=send_body(sample.text(), "1001"),
                headers={**cookie, "Idempotency-Key": "k1"},
            )
        received = http.get("/_admin/received", params=TENANT).json()
        entry = received["tenants"][0]["received"][0]
        assert (entry["externalReference"], entry["requests"], entry["stored"]) == ("1001", 1, 1)
        assert entry["answers"] == {"dropped": 1}
        found = http.get(
            "/sales-invoices", params={**TENANT, "externalReference": "1001"}, headers=cookie
        )
        assert found.json()["items"][0]["invoiceId"] == entry["invoiceId"]
        http.put("/_admin/knobs", json={"drop_after_store": 0})
        again = http.post(
            "/sales-invoices",
            params=TENANT,
            json=send_body(sample.text(), "1001"),
            headers={**cookie, "Idempotency-Key": "k1"},
        )
        assert again.status_code == 409
        assert again.json()["invoiceId"] == entry["invoiceId"]
    errors = [r for r in caplog.records if r.name.startswith("uvicorn") and r.levelno >= 40]
    assert errors == []


@pytest.mark.anyio
async def test_keeps_up_with_200_invoices_a_second_with_latency(sample: Sample) -> None:
    content = sample.einvoice().text()
    app = create_app(Knobs(latency_ms=200))
    with served(app) as url:
        async with httpx.AsyncClient(base_url=url) as first:
            cookie = (
                await first.post("/auth/login", json={"username": "demo", "apiKey": "demo-key"})
            ).json()

        async def client(number: int) -> None:
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
                headers = {"Cookie": f"LtpaToken={cookie['token']}"}

                async def one(index: int) -> None:
                    reference = f"{number}-{index}"
                    answer = await http.post(
                        "/sales-invoices",
                        params=TENANT,
                        json=send_body(content, reference),
                        headers={**headers, "Idempotency-Key": reference},
                    )
                    assert answer.status_code == 202

                async with anyio.create_task_group() as group:
                    for index in range(50):
                        group.start_soon(one, index)

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for number in range(4):
                group.start_soon(client, number)
        elapsed = time.perf_counter() - started
    assert app.state.heeros.ledger.invoice_count() == 200
    assert elapsed < 5.0


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_python_dash_m_sandbox_serves(free_port: int, sample: Sample) -> None:
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "--port",
        str(free_port),
        "--user",
        "tester:secret",
        "--confirm-after",
        "0",
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sample.einvoice()
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{free_port}") as http:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if http.get("/_admin/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            assert (
                http.post(
                    "/auth/login", json={"username": "demo", "apiKey": "demo-key"}
                ).status_code
                == 401
            )
            cookie = login(http, "tester", "secret")
            answer = http.post(
                "/sales-invoices",
                params=TENANT,
                json=send_body(sample.text(), "1001"),
                headers={**cookie, "Idempotency-Key": "k1"},
            )
            assert answer.status_code == 202
    finally:
        process.terminate()
        process.wait(10)


def run_command(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, dict[str, Any]]:
    seen: dict[str, Any] = {}

    def fake_serve(**kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(server, "serve", fake_serve)
    cli = typer.Typer()
    cli.command()(server.command)
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, seen


def test_the_command_passes_its_options_on(monkeypatch: pytest.MonkeyPatch) -> None:
    code, seen = run_command(
        monkeypatch,
        "--port", "9000",
        "--latency-ms", "200",
        "--confirm-after", "2.5",
        "--fail-5xx", "0.1",
        "--fail-429", "0.2",
        "--drop-after-store", "0.3",
        "--never-confirm", "0.4",
        "--token-ttl", "60",
        "--no-validate",
        "--seed", "7",
        "--user", "a:1",
        "--user", "b:2:3",
    )  # fmt: skip
    assert code == 0
    assert seen["port"] == 9000
    assert seen["host"] == "127.0.0.1"
    assert seen["users"] == {"a": "1", "b": "2:3"}
    knobs: Knobs = seen["knobs"]
    assert (knobs.latency_ms, knobs.confirm_after_s, knobs.token_ttl_s, knobs.seed) == (
        200,
        2.5,
        60.0,
        7,
    )
    assert (knobs.fail_5xx, knobs.fail_429, knobs.drop_after_store, knobs.never_confirm) == (
        0.1,
        0.2,
        0.3,
        0.4,
    )
    assert knobs.validate_schema is False


def test_the_command_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    code, seen = run_command(monkeypatch)
    assert code == 0
    assert seen["port"] == 8089
    assert seen["users"] is None
    assert seen["knobs"] == Knobs()


@pytest.mark.parametrize("args", [["--user", "nokey"], ["--fail-5xx", "2"], ["--user", ":k"]])
def test_the_command_refuses_bad_options(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    code, seen = run_command(monkeypatch, *args)
    assert code == 2
    assert seen == {}


def test_the_log_config_routes_sandbox_lines_to_uvicorns_handler() -> None:
    config = server.log_config("debug")
    assert config["loggers"]["sandbox"] == {
        "handlers": ["default"],
        "level": "DEBUG",
        "propagate": False,
    }
    assert "sandbox" not in LOGGING_CONFIG["loggers"]
