"""Hostile and broken input to the API: no answer is a server error, each bad invoice fails
alone, and every other invoice of the same request is closed as it was given.

The first tests replay the inputs the issue measured (a number of a million digits, a
million empty objects, more invoices than a request takes); the property-based tests
then damage invoices as JSON and as Opter XML, the period in the path and the body as
a whole, and check the same every time.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import time
from typing import Any
from urllib.parse import quote

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from producer.http.api import create_api
from producer.operations.actions import LISTED, MAX_INVOICES, Refused, stream_intake
from producer.operations.samples import sample_invoices
from tests.producer.http.test_api import TOKEN, TestClient, as_json, export_config, published
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.documents.names import NAME_PATTERN
from worker.documents.opterxml import serialize_invoice
from worker.state.store import StatusStore

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SETTINGS = Settings(broker_url="memory://", api_token=SecretStr(TOKEN))
CELERY = create_app(SETTINGS)
STORE = StatusStore(fakeredis.FakeRedis(decode_responses=True), prefix="hostile")
APP = create_api(SETTINGS, celery_app=CELERY, store=STORE, config=export_config())
CLIENT = TestClient(APP, headers={"Authorization": f"Bearer {TOKEN}"})
FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

GOOD = [i for i in sample_invoices(4, first=800001) if i.customer.customer_number != "1004"][:3]
"""Valid invoices that reach an export: each request carries them beside the hostile one."""
VICTIM = next(i for i in sample_invoices(20, first=800101) if i.customer.customer_number != "1004")
"""The invoice each test damages."""
MILLION = 1_000_000
PERIODS = (f"h{n}" for n in itertools.count())
RAW = "__raw_json_literal__"


def body_with(*entries: Any, raw: str = "") -> bytes:
    """A close body of the good invoices and ``entries``; ``RAW`` in it becomes ``raw``."""
    text = json.dumps({"invoices": [*as_json(GOOD), *entries]})
    return text.replace(json.dumps(RAW), raw).encode()


def hostile_body(path: tuple[Any, ...], value: Any) -> bytes:
    if isinstance(value, Raw):
        return body_with(damaged(path, RAW), raw=str(value))
    return body_with(damaged(path, value))


def close(body: bytes, period: str | None = None) -> Any:
    # Every request closes a period of its own with the same good invoices, while an
    # invoice number belongs to one period: each starts from an empty store.
    STORE.redis.flushall()
    answer = CLIENT.post(
        f"/periods/{period or next(PERIODS)}/close",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code < 500, answer.text[:500]
    assert "Traceback" not in answer.text
    return answer


def assert_good_closed(answer: Any) -> dict[str, Any]:
    """The good invoices were queued and kept as given; the others refused, named."""
    assert answer.status_code == 202, answer.text[:500]
    body: dict[str, Any] = answer.json()
    queued = {item.partition("/")[0] for _, item in published(CELERY)}
    assert {i.number for i in GOOD} <= queued
    for invoice in GOOD:
        assert STORE.load_invoice(invoice.number) == invoice
    assert body["total"] == body["queued"] + body["failed"]
    assert len(answer.content) < 200_000
    return body


def damaged(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    invoice: dict[str, Any] = json.loads(json.dumps(as_json([VICTIM])[0]))
    parent: Any = invoice
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return invoice


# -- the inputs the issue measured -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        pytest.param("1E+999999999", "", id="an exponent of a billion"),
        pytest.param("9" * (MILLION + 1), "", id="a string of a million digits"),
        pytest.param(RAW, "9" * (MILLION + 1), id="a JSON number of a million digits"),
        pytest.param(RAW, "1e999999999", id="a JSON number of a huge exponent"),
    ],
)
def test_a_unit_price_of_a_million_digits_fails_its_invoice_alone(value: str, raw: str) -> None:
    began = time.monotonic()
    answer = close(body_with(damaged(("rows", 0, "unit_price"), value), raw=raw))
    body = assert_good_closed(answer)
    assert [r["number"] for r in body["rejected"]] == [VICTIM.number]
    assert "rows[0].unit_price: " in body["rejected"][0]["reason"]
    assert len(body["rejected"][0]["reason"]) < 1000
    assert time.monotonic() - began < 10


def test_an_opter_xml_unit_price_of_a_million_digits_fails_its_invoice_alone() -> None:
    document = serialize_invoice(VICTIM)
    hostile = re.sub(rb"<UnitPrice>[^<]*", b"<UnitPrice>" + b"9" * MILLION, document, count=1)
    documents = [base64.b64encode(serialize_invoice(i)).decode() for i in GOOD]
    documents.append(base64.b64encode(hostile).decode())
    answer = close(json.dumps({"opter_xml": documents}).encode())
    body = assert_good_closed(answer)
    (rejected,) = body["rejected"]
    assert (
        rejected["reason"].startswith("opter_xml[3] line ") and "<UnitPrice>" in rejected["reason"]
    )


def test_a_million_empty_objects_are_refused_at_once_by_their_count() -> None:
    began = time.monotonic()
    answer = close(b'{"invoices": [' + b"{}," * (MILLION - 1) + b"{}]}", period="empties")
    assert time.monotonic() - began < 15
    assert answer.status_code == 413
    assert f"more than {MAX_INVOICES:,} invoices in one request" in answer.json()["detail"]
    assert "heeros-export close-period" in answer.json()["detail"]
    assert len(answer.content) < 2000
    assert STORE.period_run("empties") is None and published(CELERY) == []


def test_every_refusal_of_a_full_request_is_counted_but_only_the_first_are_listed() -> None:
    answer = close(b'{"invoices": [' + b"{}," * (MAX_INVOICES - 1) + b"{}]}", period="full")
    assert answer.status_code == 422
    body = answer.json()
    assert body["detail"] == (
        f"no valid invoice ({MAX_INVOICES} refused; the first {LISTED} are listed): "
        "nothing was closed"
    )
    assert len(body["rejected"]) == LISTED and len(answer.content) < 100_000
    assert STORE.period_run("full") is None


def test_the_most_invoices_a_request_takes_is_counted_as_it_is_read() -> None:
    body = json.dumps({"invoices": as_json(GOOD)}).encode()
    assert len(stream_intake(io.BytesIO(body), "p", most=3).invoices) == 3
    with pytest.raises(Refused) as info:
        stream_intake(io.BytesIO(body), "p", most=2)
    assert info.value.status == 413


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "body: JSON decode error: "),
        (b'{"invoices": [' + b"[" * 100_000, "body: JSON decode error: "),
        (b'{"invoices": [{"rows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}", "nested deeper"),
        (b'{"invoices": ["' + b"x" * (9 << 20) + b'"]}', "invoice #1: a string of more than"),
        (b'{"invoices": [{"free_text": "' + b"x" * (9 << 20) + b'"}]}', "free_text: larger than"),
        (b'{"opter_xml": ["' + b"A" * (12 << 20) + b'"]}', "a document of more than"),
        (
            b'{"opter_xml": [[' + b"1," * 5000 + b"1]]}",
            "opter_xml[0]: Input should be a valid string",
        ),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"invoices": [], "invoices2": 1}', "body.invoices2: Extra inputs are not permitted"),
        (b"[]", "body: Input should be a valid dictionary"),
    ],
)
def test_a_broken_body_is_refused_in_a_sentence(body: bytes, fragment: str) -> None:
    answer = close(body)
    assert answer.status_code in (413, 422)
    found = json.dumps(answer.json())
    assert fragment in found, found[:300]
    assert len(answer.content) < 10_000


# -- property-based: damage anywhere, the rest unaffected ---------------------------------------


class Raw(str):
    """JSON text put into a body as it is: what json.dumps would not write."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Raw({len(self):,} characters: {str.__repr__(self[:20])}...)"


class Long(str):
    """A long string, shown short when a failing example is reported."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Long({len(self):,} characters: {str.__repr__(self[:20])}...)"


HUGE_TEXT = st.integers(1_000, 300_000).map(lambda n: Long("7" * n))
HUGE_NUMBER = st.sampled_from(["1E+999999999", "-1e999999", "1e-999999999", "NaN"]) | (
    st.sampled_from([100_001, 5000]).map(lambda n: Long("9" * n))
)
RAW_NUMBER = st.sampled_from([100_001, 5000]).map(lambda n: Raw("9" * n)) | st.sampled_from(
    ["1e999999999", "-0.0", "1E-400", "123456789012345678901234567890.123456789"]
).map(Raw)
NESTED = st.integers(1, 5_000).map(lambda depth: Raw("[" * depth + "]" * depth))
JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**40), 10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
HOSTILE = st.one_of(
    HUGE_TEXT,
    HUGE_NUMBER,
    RAW_NUMBER,
    NESTED,
    JSON_VALUE,
    st.sampled_from(["\x00", "\ud800", "²", "../x", "K1:invoices", "a b", "\u202e1001"]),
    st.integers(1, 30_000).map(lambda n: [{}] * n),
)
PATHS = [
    ("number",),
    ("period",),
    ("invoice_date",),
    ("reference",),
    ("free_text",),
    ("currency",),
    ("seller_account", "iban"),
    ("seller", "name"),
    ("seller", "business_id"),
    ("customer",),
    ("customer", "customer_number"),
    ("customer", "name"),
    ("rows",),
    ("rows", 0),
    ("rows", 0, "quantity"),
    ("rows", 0, "unit_price"),
    ("rows", 0, "vat_rate"),
    ("rows", 0, "description"),
    ("rows", 0, "dimensions"),
    ("unknown_field",),
]


@given(st.sampled_from(PATHS), HOSTILE)
@FAST
def test_a_hostile_json_invoice_fails_alone(path: tuple[Any, ...], value: Any) -> None:
    answer = close(hostile_body(path, value))
    if answer.status_code == 422:
        # Only the damaged invoice's number said twice refuses the request as a whole.
        assert "appear twice" in answer.json()["detail"], answer.text[:300]
        return
    body = assert_good_closed(answer)
    assert body["total"] == len(GOOD) + 1
    for rejection in body["rejected"]:
        assert re.fullmatch(r"[A-Za-z0-9._#-]{1,40}", rejection["number"])
        assert len(rejection["reason"]) <= 2000


XML_JUNK = {
    "digits": b"9" * MILLION,
    "a character reference": b"&#1;",
    "an entity": b"&xxe;",
    "tags": b"<a/>" * 200_000,
    "text": b"x" * 3_000_000,
}
XML_DAMAGE = st.one_of(
    st.tuples(st.integers(0, 6000), st.binary(max_size=30)),
    st.tuples(
        st.sampled_from([b"UnitPrice", b"Quantity", b"Number", b"Reference", b"Description"]),
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(list(XML_JUNK)).map(XML_JUNK.__getitem__),
        ),
    ),
)


@given(XML_DAMAGE)
@FAST
def test_a_hostile_opter_xml_document_fails_alone(damage: tuple[Any, bytes]) -> None:
    document = serialize_invoice(VICTIM)
    where, junk = damage
    if isinstance(where, int):
        document = document[:where] + junk + document[where:]
    else:
        document = re.sub(
            b"<%s>[^<]*" % where, b"<%s>" % where + junk.replace(b"\\", b""), document
        )
    documents = [base64.b64encode(serialize_invoice(i)).decode() for i in GOOD]
    documents.append(base64.b64encode(document).decode())
    answer = close(json.dumps({"opter_xml": documents}).encode())
    if answer.status_code == 422:
        assert "appear twice" in answer.json()["detail"], answer.text[:300]
        return
    body = assert_good_closed(answer)
    assert body["total"] == len(GOOD) + 1


@given(st.text(max_size=60))
@FAST
def test_any_period_in_the_path_is_a_name_or_refused(period: str) -> None:
    answer = CLIENT.post(
        f"/periods/{quote(period, safe='')}/close", json={"invoices": as_json(GOOD)}
    )
    assert answer.status_code < 500, answer.text[:300]
    if answer.status_code in (200, 202):
        assert re.fullmatch(NAME_PATTERN, period)
    published(CELERY)


@given(st.one_of(JSON_VALUE.map(lambda v: json.dumps(v).encode()), st.binary(max_size=300)))
@FAST
def test_any_body_gets_an_answer_that_is_not_a_server_error(body: bytes) -> None:
    answer = close(body)
    assert answer.status_code in (202, 413, 422)
    published(CELERY)
