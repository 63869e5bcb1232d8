"""The five messages of the user document, each triggered end to end.

A real worker process, the sandbox over loopback HTTP and a real Redis: a period
is closed through the HTTP API, the worker meets the fault the test arranges,
and the invoice's message, as ``GET /runs/{run}/invoices`` shows it, is the
user document's text with its placeholders filled.

Message 1 is the answer to every failure to connect to Heeros or to log in:
a refused connection, a connection that is never accepted (timeout on connect),
TLS spoken to a server that speaks plain HTTP, a login answered 503 and wrong
credentials. Message 2 is kept for an error Heeros answers to a send. The retry
budget is one retry with short delays, so each case ends within seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from producer.cli.localservices import free_port
from producer.http.api import create_api
from producer.operations.samples import sample_invoices
from tests.integration.conftest import CONFIG, Exporter
from worker.celery.app import create_app
from worker.documents.invoice import Invoice

pytestmark = pytest.mark.integration

TOKEN = "integration-messages-token-3317"
PERIOD = "2026-11"

# The user document's texts, copied on purpose: the product must give these words.
MESSAGE_1 = (
    "Could not log into Heeros. Either the username/password is incorrect or it is not "
    "possible to connect to Heeros at the moment. Please try again in a few minutes."
)
MESSAGE_2 = (
    "It was not possible to send the invoice to Heeros. Error code from Heeros: {0}. "
    "Error message from Heeros: {1}"
)
MESSAGE_3 = (
    "The invoice has been sent but it could not be processed in Heeros because it is "
    "incomplete. Please check incomplete invoices in Heeros. Invoice ID in Heeros: {0}."
)
MESSAGE_4 = (
    "The invoice has been sent but it could not be confirmed within the time limit. "
    "Please check incomplete invoices in Heeros to see if it has been registered and its "
    "current status. Invoice ID in Heeros: {0}."
)
MESSAGE_5 = (
    "It was not possible to send the invoice {1} to Heeros due to validation errors. "
    "Number of errors: {2}. Please contact Opter support."
)

QUICK = {
    "HEEROS_RETRY_MAX": "1",
    "HEEROS_RETRY_BASE_S": "0.1",
    "HEEROS_RETRY_MAX_S": "0.2",
    "HEEROS_CONNECT_TIMEOUT_S": "0.5",
    "HEEROS_READ_TIMEOUT_S": "5",
}
"""One retry, soon: a transient failure ends the invoice within about two seconds."""

CLOSED_REGISTERS = {"customer_number": "9003", "name": "Rekisteröimätön Oy"}
CLOSED_CONFIG = CONFIG.replace(
    "[customers]\n",
    """\
[[exports]]
name = "Heeros (closed registers)"
type = "XmlSerializer"
encoding = "UTF-8"
customer_code = "00081"
office_code = "29010"
start_text = \"\"\"
CreateCustomer=false
CreateProduct=false
\"\"\"
one_file_per_invoice = true
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "tester"
client_key_env = "HEEROS_CLIENT_KEY"

[[groups]]
name = "Closed registers"
exports = ["Heeros (closed registers)"]

[customers]
"9003" = "Closed registers"
""",
)
"""The integration configuration and an export whose tenant creates no customer or product."""


@dataclass
class Api:
    """The HTTP API on a loopback port, with a client that sends the token."""

    http: httpx.Client
    exporter: Exporter

    def close(self, invoices: list[Invoice]) -> str:
        body = {"invoices": [i.model_dump(mode="json", round_trip=True) for i in invoices]}
        answer = self.http.post(f"/periods/{PERIOD}/close", json=body)
        assert answer.status_code == 202, answer.text
        run: str = answer.json()["run"]
        return run

    def wait(self, run: str, *, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            summary: dict[str, Any] = self.http.get(f"/runs/{run}").json()
            if summary["state"] != "running":
                return summary
            if time.monotonic() > deadline:
                tails = "\n".join(w.log_tail(30) for w in self.exporter.workers)
                pytest.fail(f"run {run} not finished in {timeout} s: {summary}\n{tails}")
            time.sleep(0.1)

    def invoices(self, run: str, state: str) -> list[dict[str, Any]]:
        answer = self.http.get(f"/runs/{run}/invoices", params={"state": state})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["invoices"]
        return found

    def export(self, invoice: Invoice, state: str) -> dict[str, Any]:
        """Close the period with ``invoice`` alone, wait for its run to end and return the
        invoice as the run shows it in ``state``."""
        run = self.close([invoice])
        summary = self.wait(run)
        found = self.invoices(run, state)
        assert [i["number"] for i in found] == [invoice.number], summary
        return found[0]


@pytest.fixture
def config_text() -> str:
    return CONFIG


@pytest.fixture
def api(exporter: Exporter, config_text: str) -> Iterator[Api]:
    exporter.config_path.write_text(config_text, encoding="utf-8")
    exporter.env.update(QUICK)
    settings = exporter.settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    application = create_api(settings, celery_app=create_app(settings))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
        yield Api(http, exporter)
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def never_accepting_port() -> Iterator[int]:
    """A port that listens but never accepts: its one-place backlog is taken by a connection
    of ours, so the kernel drops every further connection attempt and connecting times out."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        filler.connect(("127.0.0.1", port))
        with socket.socket() as probe:
            probe.settimeout(0.3)
            with pytest.raises(TimeoutError):
                probe.connect(("127.0.0.1", port))
        yield port


def one_invoice(number: int, **changes: Any) -> Invoice:
    """A sample invoice numbered ``number``, with ``changes`` to its fields (as JSON)."""
    (sample,) = sample_invoices(1, first=number)
    data = sample.model_dump(mode="json", round_trip=True)
    return Invoice.model_validate({**data, **changes})


# Message 1 -------------------------------------------------------------------------------

Arrange = Callable[[Exporter, pytest.FixtureRequest], dict[str, str]]


def _refused(exporter: Exporter, request: pytest.FixtureRequest) -> dict[str, str]:
    return {"HEEROS_BASE_URL": f"http://127.0.0.1:{free_port()}/sales-invoice-service-v1"}


def _connect_timeout(exporter: Exporter, request: pytest.FixtureRequest) -> dict[str, str]:
    port = request.getfixturevalue("never_accepting_port")
    return {"HEEROS_BASE_URL": f"http://127.0.0.1:{port}"}


def _tls_to_plain_http(exporter: Exporter, request: pytest.FixtureRequest) -> dict[str, str]:
    assert exporter.sandbox_url.startswith("http://")
    return {"HEEROS_BASE_URL": "https://" + exporter.sandbox_url.removeprefix("http://")}


def _login_answered_5xx(exporter: Exporter, request: pytest.FixtureRequest) -> dict[str, str]:
    exporter.knobs(fail_login_5xx=1.0)
    return {}


def _wrong_credentials(exporter: Exporter, request: pytest.FixtureRequest) -> dict[str, str]:
    return {"HEEROS_CLIENT_KEY": "not-the-key-of-tester"}


@pytest.mark.parametrize(
    ("arrange", "kind", "cause"),
    [
        (_refused, "unavailable", "ConnectError: [Errno 111] Connection refused"),
        (_connect_timeout, "unavailable", "ConnectTimeout"),
        (_tls_to_plain_http, "unavailable", "ConnectError: [SSL"),
        (_login_answered_5xx, "unavailable", "Heeros answered the login HTTP 503"),
        (_wrong_credentials, "login", "refused: HTTP 401 AUTH_FAILED"),
    ],
    ids=[
        "connection-refused",
        "connect-timeout",
        "tls-failure",
        "login-answered-503",
        "wrong-credentials",
    ],
)
def test_message_1_for_every_failure_to_connect_or_log_in(
    api: Api, request: pytest.FixtureRequest, arrange: Arrange, kind: str, cause: str
) -> None:
    env = arrange(api.exporter, request)
    api.exporter.start_workers(1, env=env)
    invoice = api.export(one_invoice(610001), "failed")
    assert invoice["message"] == MESSAGE_1
    assert invoice["kind"] == kind and invoice["heeros_id"] is None
    # no send reached Heeros, and the worker met the failure the test arranged
    assert api.exporter.received() == {}
    (worker,) = api.exporter.workers
    assert cause in worker.log_tail(200)


# Message 2 -------------------------------------------------------------------------------


def test_message_2_for_a_send_heeros_answers_with_an_error(api: Api) -> None:
    api.exporter.knobs(fail_5xx=1.0)
    api.exporter.start_workers(1)
    invoice = api.export(one_invoice(620001), "failed")
    assert invoice["message"] == MESSAGE_2.format(
        "HTTP_503",
        "Heeros answered HTTP 503: SERVICE_UNAVAILABLE: temporarily unavailable, retry later",
    )
    assert invoice["kind"] == "unavailable"
    (entry,) = api.exporter.received().values()
    # the login went through; each send (the first and its one retry) was answered 503
    assert (entry["requests"], entry["stored"], entry["answers"]) == (2, 0, {"503": 2})


def test_message_2_for_an_invoice_heeros_could_not_process(api: Api) -> None:
    api.exporter.knobs(error_fraction=1.0)
    api.exporter.start_workers(1)
    invoice = api.export(one_invoice(630001), "failed")
    (entry,) = api.exporter.received().values()
    assert entry["stored"] == 1 and entry["status"] == "ERROR"
    assert invoice["heeros_id"] == entry["invoiceId"]
    assert invoice["message"] == MESSAGE_2.format(
        "PROCESSING_FAILED", "The invoice could not be processed in Heeros (simulated failure)."
    )


# Messages 3, 4 and 5 ---------------------------------------------------------------------


def test_message_3_for_an_invoice_heeros_holds_as_incomplete(api: Api) -> None:
    api.exporter.knobs(incomplete_rule="always")
    api.exporter.start_workers(1)
    invoice = api.export(one_invoice(640001), "incomplete")
    (entry,) = api.exporter.received().values()
    assert entry["status"] == "INCOMPLETE" and invoice["heeros_id"] == entry["invoiceId"]
    assert invoice["message"] == MESSAGE_3.format(entry["invoiceId"])


def test_message_4_for_an_invoice_not_confirmed_in_time(api: Api) -> None:
    api.exporter.knobs(never_confirm=1.0)
    api.exporter.start_workers(1, env={"HEEROS_CONFIRM_DEADLINE_S": "2"})
    invoice = api.export(one_invoice(650001), "unconfirmed")
    (entry,) = api.exporter.received().values()
    assert entry["status"] == "PROCESSING" and invoice["heeros_id"] == entry["invoiceId"]
    assert invoice["message"] == MESSAGE_4.format(entry["invoiceId"])


@pytest.mark.parametrize("config_text", [CLOSED_CONFIG], ids=["closed-registers"])
def test_message_5_counts_the_validation_errors_heeros_gives(api: Api) -> None:
    api.exporter.start_workers(1)
    (sample,) = sample_invoices(1, first=660001)
    row = sample.rows[0].model_dump(mode="json", round_trip=True)
    rows = [{**row, "code": "TRP-1"}, {**row, "code": "TRP-2", "description": "Odotus"}]
    invoice = one_invoice(660001, customer=CLOSED_REGISTERS, rows=rows)
    failed = api.export(invoice, "failed")
    # the buyer and both products are unknown to a tenant that may create none of them
    assert failed["message"] == MESSAGE_5.format("", "660001", 3)
    assert failed["kind"] == "validation" and failed["export"] == "Heeros (closed registers)"
    entry = api.exporter.received()[("29010", "00081", "660001")]
    assert (entry["stored"], entry["answers"]) == (0, {"400": 1})
