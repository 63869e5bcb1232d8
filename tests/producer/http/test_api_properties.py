"""Property-based calls against the API: no answer is ever a server error.

Schemathesis generates calls from the API's own OpenAPI document (valid and
invalid ones, with and without the token); Hypothesis then closes periods of
real invoices with random damage, so the calls that succeed are generated too,
and checks that every invoice is counted once: queued, or refused with its reason.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import fakeredis
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from producer.http.api import create_api
from producer.operations.samples import sample_invoices
from tests.producer.http.test_api import TOKEN, TestClient, as_json, export_config, published
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.documents.opterxml import serialize_invoice
from worker.state.keys import State
from worker.state.store import StatusStore

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SETTINGS = Settings(broker_url="memory://", api_token=SecretStr(TOKEN))
CELERY = create_app(SETTINGS)
STORE = StatusStore(fakeredis.FakeRedis(decode_responses=True), prefix="props")
APP = create_api(SETTINGS, celery_app=CELERY, store=STORE, config=export_config())
CLIENT = TestClient(APP, headers={"Authorization": f"Bearer {TOKEN}"})
FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@FAST
def test_no_generated_call_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, (case.method, case.path, response.text)
    published(CELERY)


# -- periods of real invoices with random damage --------------------------------------------

SAMPLES = list(sample_invoices(8, first=700001))
BASE = as_json(SAMPLES)
DELETE = object()
PATHS = [
    ("number",),
    ("period",),
    ("invoice_date",),
    ("due_date",),
    ("currency",),
    ("reference",),
    ("type",),
    ("customer",),
    ("customer", "vat_number"),
    ("customer", "customer_number"),
    ("seller", "business_id"),
    ("rows",),
    ("rows", 0, "vat_rate"),
    ("rows", 0, "quantity"),
    ("rows", 0, "unit_price"),
]
GARBAGE = st.one_of(
    st.just(DELETE),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=25),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
PERIODS = (f"p{n}" for n in itertools.count())


def _damaged(base: dict[str, Any], damage: list[tuple[tuple[Any, ...], Any]]) -> Any:
    invoice = json.loads(json.dumps(base))
    for path, value in damage:
        parent = invoice
        for step in path[:-1]:
            parent = _child(parent, step)
        last = path[-1]
        if isinstance(parent, dict):
            if value is DELETE:
                parent.pop(last, None)
            else:
                parent[last] = value
        elif _child(parent, last) is not None and value is not DELETE:
            parent[last] = value
    return invoice


def _child(parent: Any, step: Any) -> Any:
    if isinstance(parent, dict):
        return parent.get(step)
    if isinstance(parent, list) and isinstance(step, int) and len(parent) > step:
        return parent[step]
    return None


INVOICES = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=len(BASE) - 1),
        st.lists(st.tuples(st.sampled_from(PATHS), GARBAGE), max_size=2),
    ),
    min_size=1,
    max_size=6,
)


@given(INVOICES)
@FAST
def test_every_invoice_of_a_damaged_period_is_queued_or_refused_with_its_reason(
    chosen: list[tuple[int, list[tuple[tuple[Any, ...], Any]]]],
) -> None:
    invoices = [_damaged(BASE[index], damage) for index, damage in chosen]
    period = next(PERIODS)
    answer = CLIENT.post(f"/periods/{period}/close", json={"invoices": invoices})
    assert answer.status_code in (202, 422), answer.text
    body = answer.json()
    if answer.status_code == 422:
        assert body["detail"] and STORE.period_run(period) is None
        assert published(CELERY) == []
        return
    assert body["total"] == body["queued"] + body["failed"]
    assert body["failed"] == len(body["rejected"])
    assert len(published(CELERY)) == body["queued"]
    given_numbers = {i.get("number") for i in invoices if isinstance(i.get("number"), str)}
    for rejection in body["rejected"]:
        if rejection["number"] in given_numbers:
            assert f"invoice {rejection['number']}: " in rejection["reason"]
    run = CLIENT.get(f"/runs/{body['run']}").json()
    assert run["total"] == body["total"] and run["in_progress"] == body["queued"]
    failed = CLIENT.get(f"/runs/{body['run']}/invoices", params={"state": "failed"}).json()
    assert sorted(e["number"] for e in failed["invoices"]) == sorted(
        r["number"] for r in body["rejected"]
    )
    again = CLIENT.post(f"/runs/{body['run']}/requeue")
    assert again.status_code == 202 and again.json()["failed"] <= body["failed"]
    published(CELERY)


@given(
    st.lists(
        st.one_of(
            st.binary(max_size=200).map(lambda data: base64.b64encode(data).decode()),
            st.text(max_size=40),
            st.tuples(st.integers(0, len(BASE) - 1), st.integers(0, 4000), st.binary(max_size=8)),
        ),
        min_size=1,
        max_size=5,
    )
)
@FAST
def test_opter_xml_of_any_bytes_is_queued_or_refused(documents: list[Any]) -> None:
    encoded = []
    for document in documents:
        if isinstance(document, tuple):
            index, cut, junk = document
            data = serialize_invoice(SAMPLES[index])
            encoded.append(base64.b64encode(data[:cut] + junk + data[cut:]).decode())
        else:
            encoded.append(document)
    answer = CLIENT.post(f"/periods/{next(PERIODS)}/close", json={"opter_xml": encoded})
    assert answer.status_code in (202, 422), answer.text
    if answer.status_code == 202:
        body = answer.json()
        assert body["total"] == body["queued"] + body["failed"]
    published(CELERY)


@given(st.sampled_from(list(State)), st.integers(0, 2**63 - 1), st.integers(1, 500))
@FAST
def test_pages_of_a_run_in_any_state(state: State, cursor: int, count: int) -> None:
    run = STORE.period_run("fixed")
    if run is None:
        CLIENT.post("/periods/fixed/close", json={"invoices": BASE})
        published(CELERY)
        run = STORE.period_run("fixed")
    answer = CLIENT.get(
        f"/runs/{run}/invoices", params={"state": state.value, "cursor": cursor, "count": count}
    )
    assert answer.status_code == 200
    assert all(entry["state"] == state.value for entry in answer.json()["invoices"])
