"""The Heeros client against the sandbox, over real loopback HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from producer.cli.localservices import LocalProcess, sandbox_received, start_sandbox
from producer.operations.samples import sample_invoice
from worker.config.starttext import SendOptions
from worker.documents.finvoice import render_finvoice
from worker.documents.invoice import Customer, Invoice
from worker.errors import (
    HeerosRateLimited,
    HeerosRefusedError,
    HeerosUnavailable,
    HeerosValidationError,
    LoginError,
)
from worker.heeros.client import HeerosClient
from worker.heeros.remote import RemoteState
from worker.heeros.sessions import clear_token_cache

pytestmark = pytest.mark.integration

KEY = "client-sandbox-key-77"
BUYER_WITHOUT_ADDRESS = Customer(
    customer_number="9001", name="Osoitteeton Oy", business_id="0201256-6", vat_number="FI02012566"
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProcess]:
    server = start_sandbox(
        args=["--user", f"client:{KEY}", "--log-level", "warning"],
        log_dir=tmp_path_factory.mktemp("sandbox"),
    )
    yield server
    server.stop()


@pytest.fixture
def heeros(sandbox: LocalProcess) -> Iterator[LocalProcess]:
    httpx.post(f"{sandbox.url}/_admin/reset", timeout=10).raise_for_status()
    knobs(sandbox, confirm_after_s=0.3, latency_ms=0)
    clear_token_cache()
    yield sandbox
    clear_token_cache()


def knobs(sandbox: LocalProcess, **values: Any) -> None:
    httpx.put(f"{sandbox.url}/_admin/knobs", json=values, timeout=10).raise_for_status()


def client(sandbox: LocalProcess, *, key: str = KEY, customer: str = "00079") -> HeerosClient:
    return HeerosClient(
        base_url=sandbox.url,
        office_code="29010",
        customer_code=customer,
        client_identity="client",
        client_key=SecretStr(key),
        read_timeout=10,
    )


def document(invoice: Invoice) -> bytes:
    return render_finvoice(invoice)


def wait_final(heeros: HeerosClient, invoice_id: str, timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = heeros.status(invoice_id)
        if status.state is not RemoteState.PENDING or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("options", "heeros_status"),
    [
        (SendOptions(move_only_to_ledger=True), "TO_LEDGER"),
        (SendOptions(send_to_customer=True), "SENDING"),
        (SendOptions(), "COMPLETE"),
    ],
)
def test_send_and_confirm(heeros: LocalProcess, options: SendOptions, heeros_status: str) -> None:
    invoice = sample_invoice(100000)  # its buyer has an e-invoice address: SendToCustomer needs one
    with client(heeros) as api:
        invoice_id = api.send(invoice.number, document(invoice), options, "key-1")
        assert api.status(invoice_id).state is RemoteState.PENDING
        status = wait_final(api, invoice_id)
        assert (status.state, status.heeros_status) == (RemoteState.CONFIRMED, heeros_status)
        found = api.find(invoice.number)
        assert found is not None and found.invoice_id == invoice_id


def test_incomplete_and_error_are_terminal(heeros: LocalProcess) -> None:
    incomplete = sample_invoice(100002).model_copy(update={"customer": BUYER_WITHOUT_ADDRESS})
    with client(heeros) as api:
        first = api.send(incomplete.number, document(incomplete), SendOptions(), "key-2")
        assert wait_final(api, first).state is RemoteState.INCOMPLETE
        knobs(heeros, error_fraction=1.0)
        failing = sample_invoice(100003)
        second = api.send(failing.number, document(failing), SendOptions(), "key-3")
        status = wait_final(api, second)
        assert status.state is RemoteState.ERROR
        assert status.error_code and status.error_message


def test_login_refused(heeros: LocalProcess) -> None:
    with client(heeros, key="wrong") as api, pytest.raises(LoginError) as info:
        api.find("1")
    assert str(info.value).startswith("Could not log into Heeros.")
    assert "wrong" not in str(info.value)


def test_token_expiry_mid_run(heeros: LocalProcess) -> None:
    knobs(heeros, token_ttl_s=0.5)
    invoice = sample_invoice(100004)
    with client(heeros) as api:
        invoice_id = api.send(invoice.number, document(invoice), SendOptions(), "key-4")
        time.sleep(0.8)
        assert api.status(invoice_id).invoice_id == invoice_id  # logged in again, once


def test_validation_errors_with_count_and_entries(heeros: LocalProcess) -> None:
    invoice = sample_invoice(100005)
    refused = SendOptions(create_customer=False, create_product=False)
    with client(heeros, customer="00080") as api, pytest.raises(HeerosValidationError) as info:
        api.send(invoice.number, document(invoice), refused, "key-5")
    entries = info.value.entries
    assert len(entries) >= 2  # the unknown buyer and at least one unknown product
    assert all(entry.path and entry.message for entry in entries)
    assert str(info.value) == (
        f"It was not possible to send the invoice {invoice.number} to Heeros due to validation "
        f"errors. Number of errors: {len(entries)}. Please contact Opter support."
    )


def test_a_duplicate_is_success_with_the_first_id(heeros: LocalProcess) -> None:
    invoice = sample_invoice(100006)
    with client(heeros) as api:
        first = api.send(invoice.number, document(invoice), SendOptions(), "key-6")
        assert api.send(invoice.number, document(invoice), SendOptions(), "key-6") == first
        assert api.send(invoice.number, document(invoice), SendOptions(), "other-key") == first
    (entry,) = sandbox_received(heeros.url).values()
    assert (entry["requests"], entry["stored"]) == (3, 1)


def test_429_carries_retry_after(heeros: LocalProcess) -> None:
    knobs(heeros, fail_429=1.0, retry_after_s=7)
    invoice = sample_invoice(100007)
    with client(heeros) as api, pytest.raises(HeerosRateLimited) as info:
        api.send(invoice.number, document(invoice), SendOptions(), "key-7")
    assert info.value.retry_after == 7


def test_5xx_is_transient(heeros: LocalProcess) -> None:
    knobs(heeros, fail_5xx=1.0)
    invoice = sample_invoice(100008)
    with client(heeros) as api, pytest.raises(HeerosUnavailable) as info:
        api.send(invoice.number, document(invoice), SendOptions(), "key-8")
    assert info.value.status_code == 503


def test_a_dropped_answer_is_resolved_by_find(heeros: LocalProcess) -> None:
    knobs(heeros, drop_after_store=1.0)
    invoice = sample_invoice(100009)
    with client(heeros) as api:
        with pytest.raises(HeerosUnavailable):
            api.send(invoice.number, document(invoice), SendOptions(), "key-9")
        found = api.find(invoice.number)
    assert found is not None
    (entry,) = sandbox_received(heeros.url).values()
    assert (entry["stored"], entry["invoiceId"]) == (1, found.invoice_id)


def test_unknown_invoice_id(heeros: LocalProcess) -> None:
    with client(heeros) as api, pytest.raises(HeerosRefusedError) as info:
        api.status("no-such-invoice")
    assert info.value.code == "NOT_FOUND"
