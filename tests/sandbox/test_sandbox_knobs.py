"""The knobs and the admin calls, in process."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from sandbox import Knobs, create_app
from sandbox.connection import ConnectionNotAbortedError

if TYPE_CHECKING:
    from tests.sandbox.conftest import Api, Clock

pytestmark = pytest.mark.anyio


async def test_tokens_expire_after_the_ttl(api: Api, clock: Clock) -> None:
    await api.knobs(token_ttl_s=60)
    login = await api.login()
    assert login.json()["expiresIn"] == 60
    clock.advance(59)
    assert (await api.lookup("1")).status_code == 200
    clock.advance(1)
    assert (await api.lookup("1")).status_code == 401
    await api.login()
    assert (await api.lookup("1")).status_code == 200


async def test_tokens_never_expire_without_a_ttl(api: Api, clock: Clock) -> None:
    clock.advance(10 * 24 * 3600)
    assert (await api.lookup("1")).status_code == 200


async def test_fail_429_answers_retry_after_and_stores_nothing(api: Api) -> None:
    await api.knobs(fail_429=1.0, retry_after_s=3)
    answer = await api.send(reference="1001")
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "3"
    assert answer.json()["errorCode"] == "TOO_MANY_REQUESTS"
    assert (await api.lookup("1001")).json() == {"items": []}
    entry = (await api.received())["1001"]
    assert (entry["requests"], entry["stored"], entry["answers"]) == (1, 0, {"429": 1})


async def test_fail_5xx_answers_503_and_stores_nothing(api: Api) -> None:
    await api.knobs(fail_5xx=1.0)
    answer = await api.send(reference="1001")
    assert answer.status_code == 503
    assert (await api.lookup("1001")).json() == {"items": []}
    await api.knobs(fail_5xx=0.0)
    assert (await api.send(reference="1001")).status_code == 202
    entry = (await api.received())["1001"]
    assert (entry["requests"], entry["stored"], entry["answers"]) == (2, 1, {"202": 1, "503": 1})


async def test_fail_login_5xx_answers_the_login_503_and_hands_out_no_token(api: Api) -> None:
    # The api fixture logged in before the knob: its token still works for the other calls.
    await api.knobs(fail_login_5xx=1.0)
    answer = await api.login()
    assert answer.status_code == 503
    assert answer.json()["errorCode"] == "SERVICE_UNAVAILABLE"
    assert "token" not in answer.json()
    assert (await api.login("demo", "wrong-key")).status_code == 503
    assert (await api.send(reference="1001")).status_code == 202
    await api.knobs(fail_login_5xx=0.0)
    assert (await api.login()).status_code == 200


async def test_an_outage_answers_503_to_every_call_but_admin(api: Api) -> None:
    await api.knobs(outage=True)
    answers = [await api.login(), await api.send(), await api.status("x"), await api.lookup("1")]
    assert [a.status_code for a in answers] == [503] * 4
    assert (await api.http.get("/_admin/health")).status_code == 200
    await api.knobs(outage=False)
    assert (await api.send()).status_code == 202


async def test_never_confirm_stays_processing(api: Api, clock: Clock) -> None:
    await api.knobs(never_confirm=1.0)
    invoice_id = (await api.send()).json()["invoiceId"]
    clock.advance(3600)
    assert (await api.status(invoice_id)).json()["status"] == "PROCESSING"


async def test_error_fraction_ends_in_error(api: Api, clock: Clock) -> None:
    await api.knobs(error_fraction=1.0)
    invoice_id = (await api.send()).json()["invoiceId"]
    assert (await api.status(invoice_id)).json()["errorCode"] is None
    clock.advance(10)
    body = (await api.status(invoice_id)).json()
    assert body["status"] == "ERROR"
    assert body["errorCode"] == "PROCESSING_FAILED"
    assert body["errorMessage"]


async def test_confirm_after_sets_the_delay(api: Api, clock: Clock) -> None:
    await api.knobs(confirm_after_s=0)
    invoice_id = (await api.send()).json()["invoiceId"]
    assert (await api.status(invoice_id)).json()["status"] == "COMPLETE"


async def test_latency_is_added_without_blocking(api: Api) -> None:
    await api.knobs(latency_ms=200)
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for index in range(50):
            group.start_soon(api.send, None, str(index))
    elapsed = time.perf_counter() - started
    assert 0.2 <= elapsed < 2.0
    assert len(await api.received()) == 50


async def test_admin_calls_get_no_latency(api: Api) -> None:
    await api.knobs(latency_ms=1000)
    started = time.perf_counter()
    await api.http.get("/_admin/knobs")
    assert time.perf_counter() - started < 0.5


async def test_drop_after_store_in_process_cuts_the_answer(api: Api) -> None:
    await api.knobs(drop_after_store=1.0)
    with pytest.raises(ConnectionNotAbortedError):
        await api.send(reference="1001")
    entry = (await api.received())["1001"]
    assert (entry["requests"], entry["stored"], entry["answers"]) == (1, 1, {"dropped": 1})
    assert len((await api.lookup("1001")).json()["items"]) == 1


async def test_a_seed_makes_runs_reproducible(
    connect: Callable[[Starlette], AbstractAsyncContextManager[Api]],
) -> None:
    async def run() -> list[str]:
        seen = []
        async with connect(create_app(Knobs(seed=7, fail_5xx=0.5))) as api:
            for index in range(12):
                answer = await api.send(reference=str(index))
                seen.append(answer.json().get("invoiceId") or str(answer.status_code))
        return seen

    first, second = await run(), await run()
    assert first == second
    assert "503" in first
    assert any(len(item) == 36 for item in first)


async def test_knobs_can_be_read_and_changed(http: httpx.AsyncClient) -> None:
    knobs = (await http.get("/_admin/knobs")).json()
    assert knobs["validate"] is True
    assert knobs["confirm_after_s"] == 10.0
    changed = await http.put("/_admin/knobs", json={"fail_429": 0.25, "validate": False})
    assert changed.status_code == 200
    assert changed.json()["fail_429"] == 0.25
    assert changed.json()["validate"] is False
    assert (await http.get("/_admin/knobs")).json() == changed.json()


@pytest.mark.parametrize(
    "patch", [{"fail_5xx": 1.5}, {"latency_ms": -1}, {"no_such_knob": 1}, {"token_ttl_s": 0}]
)
async def test_invalid_knobs_are_refused(http: httpx.AsyncClient, patch: dict[str, object]) -> None:
    before = (await http.get("/_admin/knobs")).json()
    answer = await http.put("/_admin/knobs", json=patch)
    assert answer.status_code == 422
    assert answer.json()["errorCode"] == "INVALID_KNOBS"
    assert answer.json()["validationErrors"]
    assert (await http.get("/_admin/knobs")).json() == before


async def test_knobs_need_a_json_object(http: httpx.AsyncClient) -> None:
    assert (await http.put("/_admin/knobs", content=b"[1]")).status_code == 400
    assert (await http.put("/_admin/knobs", content=b"{")).status_code == 400


async def test_reset_forgets_everything(api: Api) -> None:
    await api.send()
    await api.knobs(latency_ms=5)
    assert (await api.http.post("/_admin/reset")).json() == {"reset": True}
    assert (await api.lookup("1001")).status_code == 401
    await api.login()
    assert (await api.lookup("1001")).json() == {"items": []}
    assert (await api.registers())["customers"] == {}
    assert await api.received() == {}
    assert (await api.http.get("/_admin/knobs")).json()["latency_ms"] == 0


async def test_health(api: Api) -> None:
    await api.send()
    body = (await api.http.get("/_admin/health")).json()
    assert body["status"] == "ok"
    assert (body["tenants"], body["invoices"]) == (1, 1)


async def test_received_lists_every_tenant(api: Api) -> None:
    await api.send(reference="1")
    await api.tenant("00080", "001").send(reference="2")
    body = (await api.http.get("/_admin/received")).json()
    assert [
        (t["tt"], t["la"], [e["externalReference"] for e in t["received"]]) for t in body["tenants"]
    ] == [("00079", "001", ["1"]), ("00080", "001", ["2"])]
    entry = body["tenants"][0]["received"][0]
    assert set(entry) == {
        "externalReference",
        "requests",
        "stored",
        "invoiceId",
        "status",
        "answers",
    }


async def test_refused_sends_are_counted(api: Api) -> None:
    await api.send("<not-xml", reference="1001")
    await api.post({**api.body("x", "1001"), "format": "PDF"})
    entry = (await api.received())["1001"]
    assert entry == {
        "externalReference": "1001",
        "requests": 2,
        "stored": 0,
        "invoiceId": None,
        "status": None,
        "answers": {"400": 1, "422": 1},
    }


async def test_registers_need_tt_and_la(http: httpx.AsyncClient) -> None:
    assert (await http.get("/_admin/registers")).status_code == 400


def test_create_app_defaults() -> None:
    app = create_app()
    assert isinstance(app, Starlette)
    assert app.state.heeros.knobs == Knobs()
