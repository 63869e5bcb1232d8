"""The drift calls under /_admin/invoices: list, delete, fail after confirmation, set a status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_args

import httpx
import pytest

from sandbox import drift, ledger

if TYPE_CHECKING:
    from tests.sandbox.conftest import Api, Clock

pytestmark = pytest.mark.anyio

STATUSES = [
    "RECEIVED",
    "PROCESSING",
    "COMPLETE",
    "SENDING",
    "ARCHIVED",
    "TO_LEDGER",
    "INCOMPLETE",
    "ERROR",
]


def chosen(api: Api, **choice: str) -> dict[str, str]:
    return {**api.params, **choice}


async def delete(api: Api, **choice: str) -> httpx.Response:
    return await api.http.delete("/_admin/invoices", params=chosen(api, **choice))


async def fail(api: Api, body: Any, **choice: str) -> httpx.Response:
    return await api.http.post("/_admin/invoices/error", params=chosen(api, **choice), json=body)


async def set_status(api: Api, body: Any, **choice: str) -> httpx.Response:
    return await api.http.put("/_admin/invoices/status", params=chosen(api, **choice), json=body)


async def sent(api: Api, reference: str = "1001", **options: bool) -> str:
    answer = await api.send(reference=reference, **options)
    assert answer.status_code == 202, answer.text
    invoice_id: str = answer.json()["invoiceId"]
    return invoice_id


async def contract_status(api: Api, invoice_id: str) -> dict[str, Any]:
    answer = await api.status(invoice_id)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


# The list --------------------------------------------------------------------------------


async def test_the_list_holds_every_stored_invoice_in_order(api: Api, clock: Clock) -> None:
    first = await sent(api, "2026-11-0001")
    second = await sent(api, "2026-11-0002")
    await api.send("<not-xml", reference="2026-11-0003")
    third = await sent(api, "2026-12-0001")
    clock.advance(10)
    invoices = await api.invoices()
    assert [(i["invoiceId"], i["externalReference"]) for i in invoices] == [
        (first, "2026-11-0001"),
        (second, "2026-11-0002"),
        (third, "2026-12-0001"),
    ]
    assert invoices[0] == {
        "invoiceId": first,
        "status": "COMPLETE",
        "errorCode": None,
        "errorMessage": None,
        "externalReference": "2026-11-0001",
        "contentSha256": invoices[0]["contentSha256"],
        "statusSetByHand": False,
    }
    assert len(invoices[0]["contentSha256"]) == 64


async def test_the_list_filters_by_prefix(api: Api) -> None:
    for reference in ("2026-11-0001", "2026-11-0002", "2026-12-0001"):
        await sent(api, reference)
    assert [i["externalReference"] for i in await api.invoices("2026-11-")] == [
        "2026-11-0001",
        "2026-11-0002",
    ]
    assert await api.invoices("2027") == []
    assert len(await api.invoices("")) == 3


async def test_the_list_is_per_tenant(api: Api) -> None:
    await sent(api)
    assert await api.tenant("00079", "002").invoices() == []
    answer = await api.http.get("/_admin/invoices", params={"tt": "00079"})
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "BAD_REQUEST"


# Delete ----------------------------------------------------------------------------------


async def test_a_deleted_invoice_is_gone_and_can_be_sent_again(api: Api) -> None:
    invoice_id = await sent(api)
    answer = await delete(api, invoiceId=invoice_id)
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted"]["invoiceId"] == invoice_id
    assert answer.json()["deleted"]["externalReference"] == "1001"
    assert (await api.status(invoice_id)).status_code == 404
    assert (await api.lookup("1001")).json() == {"items": []}
    assert await api.invoices() == []
    assert (await api.http.get("/_admin/health")).json()["invoices"] == 0
    # Neither its number nor its key is remembered: the same send is received anew.
    again = await api.send(reference="1001", key="key-1")
    assert again.status_code == 202, again.text
    assert again.json()["invoiceId"] != invoice_id
    entry = (await api.received())["1001"]
    assert (entry["requests"], entry["stored"], entry["invoiceId"]) == (
        2,
        2,
        again.json()["invoiceId"],
    )


async def test_delete_by_external_reference(api: Api) -> None:
    kept = await sent(api, "1001")
    gone = await sent(api, "1002")
    answer = await delete(api, externalReference="1002")
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted"]["invoiceId"] == gone
    assert [i["invoiceId"] for i in await api.invoices()] == [kept]
    entry = (await api.received())["1002"]
    assert (entry["stored"], entry["invoiceId"], entry["status"]) == (1, None, None)


async def test_delete_of_an_unknown_invoice_is_not_found(api: Api) -> None:
    await sent(api)
    for choice in ({"invoiceId": "nope"}, {"externalReference": "404"}):
        answer = await delete(api, **choice)
        assert answer.status_code == 404
        assert answer.json()["errorCode"] == "NOT_FOUND"
    other = api.tenant("00080", "001")
    assert (await delete(other, externalReference="1001")).status_code == 404
    assert len(await api.invoices()) == 1


@pytest.mark.parametrize(
    "choice", [{}, {"invoiceId": "x", "externalReference": "1001"}, {"invoiceId": ""}]
)
async def test_an_invoice_is_chosen_by_exactly_one_of_id_and_number(
    api: Api, choice: dict[str, str]
) -> None:
    await sent(api)
    answers = [
        await delete(api, **choice),
        await fail(api, {"errorCode": "X", "errorMessage": "y"}, **choice),
        await set_status(api, {"status": "COMPLETE"}, **choice),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400]
    assert {a.json()["errorCode"] for a in answers} == {"BAD_REQUEST"}
    assert len(await api.invoices()) == 1


# ERROR after confirmation ----------------------------------------------------------------

FAILURE = {"errorCode": "CUSTOMER_REJECTED", "errorMessage": "The receiver refused the invoice."}


@pytest.mark.parametrize(
    ("options", "confirmed"),
    [({}, "COMPLETE"), ({"moveOnlyToLedger": True}, "TO_LEDGER")],
)
async def test_a_confirmed_invoice_fails_afterwards(
    api: Api, clock: Clock, options: dict[str, bool], confirmed: str
) -> None:
    invoice_id = await sent(api, **options)
    clock.advance(10)
    assert (await contract_status(api, invoice_id))["status"] == confirmed
    answer = await fail(api, FAILURE, invoiceId=invoice_id)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ERROR"
    assert answer.json()["statusSetByHand"] is True
    expected = {
        "invoiceId": invoice_id,
        "status": "ERROR",
        "errorCode": "CUSTOMER_REJECTED",
        "errorMessage": "The receiver refused the invoice.",
    }
    assert await contract_status(api, invoice_id) == expected
    clock.advance(3600)
    assert await contract_status(api, invoice_id) == expected
    found = (await api.lookup("1001")).json()
    assert found == {"items": [{"invoiceId": invoice_id, "status": "ERROR"}]}


async def test_failing_by_external_reference(api: Api, clock: Clock) -> None:
    invoice_id = await sent(api, "1001")
    clock.advance(10)
    assert (await fail(api, FAILURE, externalReference="1001")).status_code == 200
    assert (await contract_status(api, invoice_id))["errorCode"] == "CUSTOMER_REJECTED"


async def test_an_unconfirmed_invoice_cannot_fail_after_confirmation(
    api: Api, clock: Clock
) -> None:
    invoice_id = await sent(api)
    answer = await fail(api, FAILURE, invoiceId=invoice_id)
    assert answer.status_code == 409
    assert answer.json()["errorCode"] == "NOT_CONFIRMED"
    assert "RECEIVED" in answer.json()["errorMessage"]
    clock.advance(10)
    assert (await contract_status(api, invoice_id))["status"] == "COMPLETE"


async def test_an_incomplete_invoice_is_not_confirmed(api: Api, clock: Clock) -> None:
    await api.knobs(incomplete_rule="always")
    invoice_id = await sent(api)
    clock.advance(10)
    assert (await fail(api, FAILURE, invoiceId=invoice_id)).status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"errorCode": "X"},
        {"errorMessage": "y"},
        {"errorCode": "", "errorMessage": "y"},
        {"errorCode": 1, "errorMessage": "y"},
        {**FAILURE, "status": "ERROR"},
    ],
)
async def test_a_failure_needs_a_code_and_a_message(
    api: Api, clock: Clock, body: dict[str, Any]
) -> None:
    invoice_id = await sent(api)
    clock.advance(10)
    answer = await fail(api, body, invoiceId=invoice_id)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errorCode"] == "INVALID_CHANGE"
    assert answer.json()["validationErrors"]
    assert (await contract_status(api, invoice_id))["status"] == "COMPLETE"


# A status by hand ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "ERROR"])
async def test_any_status_can_be_set_by_hand_and_holds(api: Api, clock: Clock, status: str) -> None:
    invoice_id = await sent(api)
    answer = await set_status(api, {"status": status}, invoiceId=invoice_id)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == status
    for _ in range(2):
        assert await contract_status(api, invoice_id) == {
            "invoiceId": invoice_id,
            "status": status,
            "errorCode": None,
            "errorMessage": None,
        }
        clock.advance(3600)


async def test_error_by_hand_carries_its_code_and_message(api: Api) -> None:
    invoice_id = await sent(api)
    body = {"status": "ERROR", **FAILURE}
    answer = await set_status(api, body, externalReference="1001")
    assert answer.status_code == 200, answer.text
    assert await contract_status(api, invoice_id) == {
        "invoiceId": invoice_id,
        "status": "ERROR",
        **FAILURE,
    }
    # Back to a confirmed status: the error fields go with the ERROR.
    await set_status(api, {"status": "ARCHIVED"}, invoiceId=invoice_id)
    assert await contract_status(api, invoice_id) == {
        "invoiceId": invoice_id,
        "status": "ARCHIVED",
        "errorCode": None,
        "errorMessage": None,
    }


async def test_a_never_confirming_invoice_can_be_confirmed_by_hand(api: Api, clock: Clock) -> None:
    await api.knobs(never_confirm=1.0)
    invoice_id = await sent(api)
    clock.advance(3600)
    assert (await contract_status(api, invoice_id))["status"] == "PROCESSING"
    await set_status(api, {"status": "TO_LEDGER"}, invoiceId=invoice_id)
    assert (await contract_status(api, invoice_id))["status"] == "TO_LEDGER"


@pytest.mark.parametrize(
    "body",
    [
        {"status": "DONE"},
        {"status": "complete"},
        {"status": "ERROR"},
        {"status": "ERROR", "errorCode": "X"},
        {"status": "COMPLETE", "errorCode": "X"},
        {"status": "COMPLETE", "errorMessage": "y"},
        {"status": "COMPLETE", "extra": 1},
        {},
    ],
)
async def test_refused_status_changes_change_nothing(api: Api, body: dict[str, Any]) -> None:
    invoice_id = await sent(api)
    answer = await set_status(api, body, invoiceId=invoice_id)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errorCode"] == "INVALID_CHANGE"
    assert answer.json()["validationErrors"]
    assert (await contract_status(api, invoice_id))["status"] == "RECEIVED"
    assert (await api.invoices())[0]["statusSetByHand"] is False


@pytest.mark.parametrize("content", [b"not json", b"[1]", b'"COMPLETE"'])
async def test_a_change_needs_a_json_object(api: Api, content: bytes) -> None:
    invoice_id = await sent(api)
    params = chosen(api, invoiceId=invoice_id)
    answers = [
        await api.http.put("/_admin/invoices/status", params=params, content=content),
        await api.http.post("/_admin/invoices/error", params=params, content=content),
    ]
    assert [a.status_code for a in answers] == [400, 400]


async def test_a_status_change_of_an_unknown_invoice_is_not_found(api: Api) -> None:
    answer = await set_status(api, {"status": "COMPLETE"}, invoiceId="nope")
    assert answer.status_code == 404
    assert (await fail(api, FAILURE, externalReference="404")).status_code == 404


async def test_drift_calls_need_no_login_and_get_no_latency(api: Api) -> None:
    invoice_id = await sent(api)
    await api.knobs(outage=True)
    api.token = None
    assert (await set_status(api, {"status": "COMPLETE"}, invoiceId=invoice_id)).status_code == 200
    assert len(await api.invoices()) == 1
    assert (await delete(api, invoiceId=invoice_id)).status_code == 200


async def test_reset_forgets_changes_by_hand(api: Api) -> None:
    invoice_id = await sent(api)
    await set_status(api, {"status": "COMPLETE"}, invoiceId=invoice_id)
    await api.http.post("/_admin/reset")
    assert await api.invoices() == []


def test_the_statuses_by_hand_are_the_contracts() -> None:
    assert get_args(drift.Status) == ledger.STATUSES == tuple(STATUSES)
