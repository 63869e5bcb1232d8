"""Each call of the contract, in process: login, send, status, look-up, idempotency, tenancy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

if TYPE_CHECKING:
    from tests.sandbox.conftest import Api, Clock, Sample

pytestmark = pytest.mark.anyio


async def test_login_answers_a_token(http: httpx.AsyncClient) -> None:
    answer = await http.post("/auth/login", json={"username": "demo", "apiKey": "demo-key"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"token", "expiresIn"}
    assert body["expiresIn"] == 3600
    assert len(body["token"]) >= 32


async def test_tokens_are_random(api: Api) -> None:
    first = api.token
    await api.login()
    assert api.token != first


@pytest.mark.parametrize(("username", "key"), [("demo", "wrong"), ("nobody", "demo-key")])
async def test_a_wrong_login_is_auth_failed(
    http: httpx.AsyncClient, username: str, key: str
) -> None:
    answer = await http.post("/auth/login", json={"username": username, "apiKey": key})
    assert answer.status_code == 401
    assert answer.json()["errorCode"] == "AUTH_FAILED"


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"username": "demo"}'])
async def test_a_malformed_login_is_a_bad_request(http: httpx.AsyncClient, body: bytes) -> None:
    answer = await http.post("/auth/login", content=body)
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "BAD_REQUEST"


async def test_configured_users_can_log_in(http: httpx.AsyncClient, api: Api) -> None:
    assert (await api.login("other", "other-key")).status_code == 200


@pytest.mark.parametrize("token", [None, "forged"])
async def test_every_call_needs_a_valid_token(api: Api, token: str | None) -> None:
    api.token = token
    answers = [await api.send(), await api.status("x"), await api.lookup("1001")]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert {a.json()["errorCode"] for a in answers} == {"AUTH_FAILED"}


@pytest.mark.parametrize("params", [{}, {"tt": "00079"}, {"la": "001"}, {"tt": "", "la": "001"}])
async def test_every_call_needs_tt_and_la(api: Api, sample: Sample, params: dict[str, str]) -> None:
    headers = {**api.headers, "Idempotency-Key": "k"}
    body = api.body(sample.text())
    answers = [
        await api.http.post("/sales-invoices", params=params, json=body, headers=headers),
        await api.http.get("/sales-invoices/x", params=params, headers=headers),
        await api.http.get(
            "/sales-invoices", params={**params, "externalReference": "1"}, headers=headers
        ),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert {a.json()["errorCode"] for a in answers} == {"BAD_REQUEST"}


async def test_a_send_is_received_and_can_be_looked_up(api: Api) -> None:
    answer = await api.send(reference="1001")
    assert answer.status_code == 202
    body = answer.json()
    assert body["status"] == "RECEIVED"
    invoice_id = body["invoiceId"]
    status = await api.status(invoice_id)
    assert status.status_code == 200
    assert status.json() == {
        "invoiceId": invoice_id,
        "status": "RECEIVED",
        "errorCode": None,
        "errorMessage": None,
    }
    found = await api.lookup("1001")
    assert found.json() == {"items": [{"invoiceId": invoice_id, "status": "RECEIVED"}]}


async def test_a_look_up_of_an_unknown_number_is_empty(api: Api) -> None:
    answer = await api.lookup("404")
    assert answer.status_code == 200
    assert answer.json() == {"items": []}


async def test_a_look_up_needs_the_number(api: Api) -> None:
    answer = await api.http.get("/sales-invoices", params=api.params, headers=api.headers)
    assert answer.status_code == 400


async def test_an_unknown_invoice_is_not_found(api: Api) -> None:
    answer = await api.status("no-such-invoice")
    assert answer.status_code == 404
    assert answer.json()["errorCode"] == "NOT_FOUND"


async def test_states_go_received_processing_then_final(api: Api, clock: Clock) -> None:
    invoice_id = (await api.send()).json()["invoiceId"]
    seen = []
    for _ in range(4):
        seen.append((await api.status(invoice_id)).json()["status"])
        clock.advance(4.0)
    assert seen == ["RECEIVED", "RECEIVED", "PROCESSING", "COMPLETE"]


async def test_the_same_idempotency_key_is_a_duplicate(api: Api) -> None:
    first = await api.send(reference="1001", key="K")
    again = await api.send(reference="1002", key="K")
    assert again.status_code == 409
    assert again.json()["errorCode"] == "DUPLICATE"
    assert again.json()["invoiceId"] == first.json()["invoiceId"]
    assert (await api.lookup("1002")).json() == {"items": []}


async def test_the_same_external_reference_is_a_duplicate(api: Api, sample: Sample) -> None:
    first = await api.send(reference="1001", key="K1")
    sample.set("InvoiceRow/ArticleName", "Something else entirely")
    again = await api.send(sample.text(), reference="1001", key="K2")
    assert again.status_code == 409
    assert again.json()["invoiceId"] == first.json()["invoiceId"]
    received = await api.received()
    assert received["1001"]["requests"] == 2
    assert received["1001"]["stored"] == 1
    assert received["1001"]["answers"] == {"202": 1, "409": 1}


async def test_concurrent_sends_of_one_invoice_store_it_once(api: Api) -> None:
    await api.knobs(latency_ms=20)
    answers: list[int] = []

    async def send(index: int) -> None:
        answers.append((await api.send(reference="1001", key=f"K{index}")).status_code)

    async with anyio.create_task_group() as group:
        for index in range(20):
            group.start_soon(send, index)
    assert sorted(answers) == [202] + [409] * 19
    assert (await api.received())["1001"]["stored"] == 1


async def test_a_refused_invoice_can_be_sent_again_fixed(api: Api, sample: Sample) -> None:
    sample.set("InvoiceRow/UnitPriceAmount", "-1,00")
    refused = await api.send(sample.text(), reference="1001", key="K")
    assert refused.status_code == 400
    assert (await api.lookup("1001")).json() == {"items": []}
    accepted = await api.send(reference="1001", key="K")
    assert accepted.status_code == 202


async def test_tenants_are_kept_apart(api: Api) -> None:
    other = api.tenant("79", "001")
    mine = (await api.send(reference="1001")).json()["invoiceId"]
    theirs = await other.send(reference="1001")
    assert theirs.status_code == 202
    assert theirs.json()["invoiceId"] != mine
    assert (await other.status(mine)).status_code == 404
    assert (await other.lookup("1001")).json()["items"][0]["invoiceId"] != mine
    third = api.tenant("00079", "002")
    assert (await third.lookup("1001")).json() == {"items": []}
    assert (await third.registers())["customers"] == {}
    assert list(await third.received()) == []


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda body: body.pop("options"), 400, "BAD_REQUEST"),
        (lambda body: body["options"].pop("createProduct"), 400, "BAD_REQUEST"),
        (lambda body: body["options"].update(moveOnlyToLedge=True), 400, "BAD_REQUEST"),
        (lambda body: body["options"].update(createCustomer="true"), 400, "BAD_REQUEST"),
        (lambda body: body.update(content=""), 400, "BAD_REQUEST"),
        (lambda body: body.update(externalReference=1001), 400, "BAD_REQUEST"),
        (lambda body: body.update(format="FINVOICE_2_0"), 422, "UNSUPPORTED_FORMAT"),
        (lambda body: body.update(encoding="latin-1"), 422, "UNSUPPORTED_ENCODING"),
        (
            lambda body: body["options"].update(moveOnlyToLedger=True, sendToCustomer=True),
            422,
            "INVALID_OPTIONS",
        ),
    ],
)
async def test_malformed_sends_are_request_errors(
    api: Api, sample: Sample, mutate: Callable[[dict[str, Any]], object], status: int, code: str
) -> None:
    body = api.body(sample.text())
    mutate(body)
    answer = await api.post(body)
    assert answer.status_code == status, answer.text
    assert answer.json()["errorCode"] == code
    assert answer.json()["errorMessage"]
    assert (await api.lookup("1001")).json() == {"items": []}


async def test_a_body_that_is_not_json_is_a_bad_request(api: Api) -> None:
    headers = {**api.headers, "Idempotency-Key": "k"}
    answer = await api.http.post(
        "/sales-invoices", params=api.params, content=b"{nope", headers=headers
    )
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "BAD_REQUEST"


async def test_a_send_needs_an_idempotency_key(api: Api, sample: Sample) -> None:
    answer = await api.http.post(
        "/sales-invoices", params=api.params, json=api.body(sample.text()), headers=api.headers
    )
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "BAD_REQUEST"
    assert "Idempotency-Key" in answer.json()["errorMessage"]


async def test_unknown_paths_answer_json(http: httpx.AsyncClient) -> None:
    answer = await http.get("/nowhere")
    assert answer.status_code == 404
    assert answer.json()["errorCode"] == "NOT_FOUND"
    answer = await http.delete("/sales-invoices")
    assert answer.status_code == 405


async def test_each_request_is_logged_in_one_line_without_secrets(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sandbox"):
        await api.login()
        await api.send(reference="1001")
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("sandbox")]
    assert len(lines) == 2
    assert lines[0].startswith("POST /auth/login ")
    assert "status=200" in lines[0]
    assert lines[1].startswith("POST /sales-invoices tenant=00079/001 invoice=1001 status=202 ms=")
    assert api.token is not None
    assert not any(api.token in line or "demo-key" in line for line in lines)
