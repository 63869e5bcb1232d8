"""The HTTP API in process: fakeredis for the store, Celery's in-memory broker for the tasks."""

from __future__ import annotations

import base64
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from celery import Celery
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from producer.http.api import create_api
from producer.operations.samples import sample_invoices
from worker.celery.app import create_app
from worker.celery.tasks import BATCH_TASK, EXPRESS_QUEUE, SEND_QUEUE
from worker.config import ExportConfig, parse_export_config
from worker.config.settings import Settings
from worker.documents.invoice import Invoice
from worker.documents.opterxml import serialize_invoice
from worker.errors import ConfigError
from worker.state.keys import State
from worker.state.store import StatusStore

with warnings.catch_warnings():
    # Starlette would rather its test client ran on another HTTP library; httpx is ours.
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

TOKEN = "api-token-7731-0042"
CLIENT_KEY = "client-key-never-shown-4410"
CONFIG = """
[[exports]]
name = "Heeros (API)"
type = "XmlSerializer"
encoding = "UTF-8"
customer_code = "00079"
office_code = "29010"
one_file_per_invoice = true
[exports.file_transfer]
method = "Heeros API"
client_identity = "tester"
client_key_env = "KEY"

[[exports]]
name = "Heeros (strict)"
type = "XmlSerializer"
encoding = "ISO-8859-15"
customer_code = "00080"
office_code = "29010"
one_file_per_invoice = true
[exports.file_transfer]
method = "Heeros API"
client_identity = "tester"
client_key_env = "KEY"

[[groups]]
name = "Heeros API"
exports = ["Heeros (API)"]
default = true

[[groups]]
name = "Strict"
exports = ["Heeros (strict)"]

[[groups]]
name = "Nowhere"
exports = []

[customers]
"1002" = "Strict"
"1004" = "Nowhere"
"""


def export_config() -> ExportConfig:
    return parse_export_config(CONFIG, environ={"KEY": CLIENT_KEY})


def waiting(app: Celery) -> dict[str, list[tuple[str, str]]]:
    """The send tasks waiting in the in-memory broker, per send queue (taken off it)."""
    found: dict[str, list[tuple[str, str]]] = {}
    with app.connection_for_read() as connection:
        for name in (EXPRESS_QUEUE, SEND_QUEUE):
            queue = connection.SimpleQueue(name, no_ack=True)
            while True:
                try:
                    message = queue.get(block=False)
                except queue.Empty:
                    break
                args = message.payload[0]
                # a window's sends go out a few to a message
                sends = args[0] if message.headers.get("task") == BATCH_TASK else [args]
                found.setdefault(name, []).extend((run, item) for run, item in sends)
            queue.close()
    return found


def published(app: Celery) -> list[tuple[str, str]]:
    """The send tasks waiting in the in-memory broker, in both send queues (taken off it)."""
    return [sent for queue in waiting(app).values() for sent in queue]


def as_json(invoices: list[Invoice]) -> list[dict[str, Any]]:
    return [invoice.model_dump(mode="json", round_trip=True) for invoice in invoices]


def as_xml(invoices: list[Invoice], encoding: str = "UTF-8") -> list[str]:
    return [
        base64.b64encode(serialize_invoice(i, encoding=encoding)).decode()  # type: ignore[arg-type]
        for i in invoices
    ]


@dataclass
class Api:
    client: TestClient
    store: StatusStore
    app: Celery

    def tasks(self) -> list[tuple[str, str]]:
        return published(self.app)


@pytest.fixture
def api(store: StatusStore) -> Iterator[Api]:
    settings = Settings(broker_url="memory://", api_token=SecretStr(TOKEN))
    app = create_app(settings)
    published(app)  # the in-memory broker is shared by the process: start empty
    application = create_api(settings, celery_app=app, store=store, config=export_config())
    with TestClient(application, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield Api(client, store, app)


PERIOD = list(sample_invoices(12))
ROUTED = [i for i in PERIOD if i.customer.customer_number != "1004"]
"""The invoices of the period that reach an export (customer 1004's group has none)."""


def close(api: Api, invoices: list[dict[str, Any]], period: str = "2026-11") -> Any:
    return api.client.post(f"/periods/{period}/close", json={"invoices": invoices})


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, False),
        (f"Bearer {TOKEN}x", True),
        (f"Basic {TOKEN}", True),
        ("Bearer", True),
        ("Bearer ünïcode".encode("latin-1"), True),
    ],
)
def test_a_call_without_the_token_gets_401_and_does_nothing(
    api: Api, header: str | bytes | None, error: bool
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    client = TestClient(api.client.app)
    answer = client.post(
        "/periods/2026-11/close", json={"invoices": as_json(PERIOD)}, headers=headers
    )
    assert answer.status_code == 401
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert ('error="invalid_token"' in challenge) is error
    assert TOKEN not in answer.text
    assert api.store.redis.keys("*") == []
    assert api.tasks() == []
    for method, path in [
        ("GET", "/runs"),
        ("GET", "/runs/x"),
        ("POST", "/runs/x/requeue"),
        ("GET", "/runs/x/invoices"),
        ("POST", "/exports"),
        ("GET", "/nope"),
    ]:
        assert client.request(method, path, headers=headers).status_code == 401


def test_the_token_is_checked_before_the_body_is_read(api: Api) -> None:
    client = TestClient(api.client.app)
    answer = client.post("/periods/2026-11/close", content=b"{not json")
    assert answer.status_code == 401


def test_the_openapi_document_is_served_without_a_token(api: Api) -> None:
    answer = TestClient(api.client.app).get("/openapi.json")
    assert answer.status_code == 200
    document = answer.json()
    assert set(document["paths"]) == {
        "/periods/{period}/close",
        "/exports",
        "/runs/{run}/requeue",
        "/runs",
        "/runs/{run}",
        "/runs/{run}/invoices",
        "/runs/{run}/failures",
        "/periods/{period}/reconcile",
        "/reconciliations/{reconciliation}",
    }
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_without_a_token_the_api_refuses_to_start(store: StatusStore) -> None:
    for token in (None, SecretStr("  ")):
        settings = Settings(broker_url="memory://", api_token=token)
        with pytest.raises(ConfigError, match="HEEROS_API_TOKEN is not set"):
            create_api(settings, store=store, config=export_config())


def test_anonymous_calls_only_when_asked_for(store: StatusStore) -> None:
    settings = Settings(broker_url="memory://")
    application = create_api(settings, store=store, config=export_config(), allow_anonymous=True)
    assert TestClient(application).get("/runs").json() == []


def test_without_an_export_configuration_the_api_refuses_to_start() -> None:
    settings = Settings(broker_url="memory://", api_token=SecretStr(TOKEN))
    with pytest.raises(ConfigError, match="HEEROS_EXPORT_CONFIG"):
        create_api(settings)


# -- closing a period ------------------------------------------------------------------------


def _expected_per_export(invoices: list[Invoice]) -> dict[str, int]:
    names = {"1002": "Heeros (strict)", "1004": None}
    counts: dict[str, int] = {}
    for invoice in invoices:
        name = names.get(invoice.customer.customer_number, "Heeros (API)")
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_closing_a_period_queues_its_invoices(api: Api) -> None:
    answer = close(api, as_json(PERIOD))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    per_export = _expected_per_export(PERIOD)
    routed = sum(per_export.values())
    assert body["run"] == "2026-11-0001" and answer.headers["Location"] == "/runs/2026-11-0001"
    nowhere = [i for i in PERIOD if i.customer.customer_number == "1004"]
    # an invoice whose group has no Heeros export is counted, as not exported (never queued)
    assert body["queued"] == routed and body["total"] == routed + len(nowhere) == len(PERIOD)
    assert body["per_export"] == per_export
    assert body["existing"] is False and body["preview"] is False
    assert sorted(r["number"] for r in body["rejected"]) == sorted(i.number for i in nowhere)
    assert sorted(item.partition("/")[0] for _, item in api.tasks()) == [i.number for i in ROUTED]
    assert api.store.period_invoices("2026-11") == sorted(i.number for i in PERIOD)


def test_a_customer_whose_group_has_no_heeros_export_is_reported(api: Api) -> None:
    assert any(i.customer.customer_number == "1004" for i in PERIOD)
    body = close(api, as_json(PERIOD)).json()
    assert len(body["warnings"]) == 1 and "customer 1004" in body["warnings"][0]
    assert "'Nowhere' has no Heeros export" in body["warnings"][0]
    run = api.client.get(f"/runs/{body['run']}").json()
    assert run["warnings"] == body["warnings"]
    assert run["per_export"] == body["per_export"]
    # each of its invoices is shown as not exported, with the reason, never as exported
    nowhere = sorted(i.number for i in PERIOD if i.customer.customer_number == "1004")
    failed = api.client.get(f"/runs/{body['run']}/invoices", params={"state": "failed"}).json()
    records = {r["number"]: r for r in failed["invoices"]}
    assert sorted(records) == nowhere
    for number in nowhere:
        assert records[number]["kind"] == "no_export"
        assert "'Nowhere' has no Heeros export" in records[number]["message"]
    assert run["failed"] == len(nowhere) and run["invoices"] == len(PERIOD)


def test_closing_a_period_twice_answers_with_its_run(api: Api) -> None:
    first = close(api, as_json(PERIOD)).json()
    queued = api.tasks()
    again = close(api, as_json(PERIOD))
    assert again.status_code == 200
    body = again.json()
    assert body["run"] == first["run"] and body["existing"] is True
    assert body["total"] == first["total"] and body["queued"] == 0
    assert body["per_export"] == first["per_export"] and body["warnings"] == first["warnings"]
    assert queued and api.tasks() == []
    assert [r["run"] for r in api.client.get("/runs").json()] == [first["run"]]


def test_one_invalid_invoice_fails_alone_with_its_reason(api: Api) -> None:
    invoices = as_json(ROUTED[:3])
    invoices[1]["rows"][0]["vat_rate"] = "23"
    invoices.append({"number": "100099", "period": "2026-11"})
    answer = close(api, invoices)
    assert answer.status_code == 202
    body = answer.json()
    assert body["total"] == 4 and body["failed"] == 2
    reasons = {r["number"]: r["reason"] for r in body["rejected"]}
    assert "invoice 100002: rows[0].vat_rate: VAT rate 23 %" in reasons["100002"]
    assert (
        "invoice 100099: " in reasons["100099"]
        and "invoice_date: Field required" in (reasons["100099"])
    )
    page = api.client.get(f"/runs/{body['run']}/invoices", params={"state": "failed"}).json()
    messages = {entry["number"]: entry["message"] for entry in page["invoices"]}
    assert set(messages) == {"100002", "100099"}
    assert "rows[0].vat_rate" in messages["100002"]
    assert len(api.tasks()) == 2


def test_opter_xml_documents_in_base64(api: Api) -> None:
    documents = as_xml(ROUTED[:2]) + as_xml(ROUTED[2:4], "ISO-8859-15")
    documents += ["not base64!", base64.b64encode(b"<Invoice><Number>7</Number>").decode()]
    answer = api.client.post("/periods/2026-11/close", json={"opter_xml": documents})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["total"] == 6 and body["failed"] == 2
    assert [r["number"] for r in body["rejected"]] == ["#5", "#6"]
    assert body["rejected"][0]["reason"].startswith("opter_xml[4]: not base64")
    assert body["rejected"][1]["reason"].startswith("opter_xml[5] line 1: malformed XML")
    assert api.store.load_invoice(ROUTED[2].number) == ROUTED[2]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "one of the two"),
        ({"invoices": [], "opter_xml": []}, "one of the two"),
        ({"invoices": []}, "no invoice"),
        ({"invoices": "x"}, "invoices: Input should be a valid list"),
        ({"invoices": [{}], "extra": 1}, "body.extra: Extra inputs are not permitted"),
        (
            {"period": "2026-10", "invoices": [{}]},
            "period: the body names 2026-10, the path 2026-11",
        ),
        ({"opter_xml": [1]}, "body.opter_xml[0]: Input should be a valid string"),
    ],
)
def test_bad_close_requests_get_422_naming_what_is_wrong(
    api: Api, body: dict[str, Any], fragment: str
) -> None:
    answer = api.client.post("/periods/2026-11/close", json=body)
    assert answer.status_code == 422
    assert fragment in answer.json()["detail"]
    assert api.tasks() == [] and api.store.period_run("2026-11") is None


def test_a_period_name_must_be_safe(api: Api) -> None:
    answer = api.client.post("/periods/..%2F..%2Fx%20y/close", json={"invoices": [{}]})
    assert answer.status_code in (404, 422)
    answer = api.client.post(f"/periods/{'9' * 30}/close", json={"invoices": [{}]})
    assert answer.status_code == 422 and "period" in answer.json()["detail"]


def test_the_same_invoice_number_twice_is_refused(api: Api) -> None:
    invoices = as_json([PERIOD[0], PERIOD[1], PERIOD[0]])
    answer = close(api, invoices)
    assert answer.status_code == 422
    assert answer.json()["detail"] == "invoice numbers appear twice: 100001"
    broken = {**as_json([PERIOD[1]])[0], "due_date": "never"}
    answer = close(api, [*as_json(PERIOD[:2]), broken])
    assert answer.status_code == 422 and "100002" in answer.json()["detail"]
    assert api.store.period_run("2026-11") is None


def test_a_period_without_a_valid_invoice_is_not_closed(api: Api) -> None:
    answer = close(api, [{"number": "1"}, "x", {"number": "1"}])
    assert answer.status_code == 422
    body = answer.json()
    assert body["detail"] == "no valid invoice (3 refused): nothing was closed"
    assert [r["number"] for r in body["rejected"]] == ["1", "#2", "1#3"]
    assert "invoice 1: " in body["rejected"][0]["reason"]
    assert api.store.period_run("2026-11") is None
    assert close(api, as_json(PERIOD[:2])).status_code == 202


def test_refused_invoices_sharing_a_number_each_count_once(api: Api) -> None:
    invoices = [*as_json(PERIOD[:1]), {"number": "!!"}, {"number": "??"}]
    body = close(api, invoices).json()
    assert [r["number"] for r in body["rejected"]] == ["unknown", "unknown#2"]
    run = api.client.get(f"/runs/{body['run']}").json()
    assert run["total"] == 3 and run["failed"] == 2 and run["in_progress"] == 1


def test_a_body_over_the_limit_gets_413(store: StatusStore) -> None:
    settings = Settings(broker_url="memory://", api_token=SecretStr(TOKEN))
    application = create_api(
        settings,
        celery_app=create_app(settings),
        store=store,
        config=export_config(),
        max_body=1000,
    )
    client = TestClient(application, headers={"Authorization": f"Bearer {TOKEN}"})
    answer = client.post("/periods/2026-11/close", json={"invoices": as_json(PERIOD[:2])})
    assert answer.status_code == 413 and "larger than" in answer.json()["detail"]

    def chunks() -> Iterator[bytes]:
        yield b'{"invoices": ['
        for _ in range(100):
            yield b'{"number": "1"},'
        yield b"{}]}"

    answer = client.post(
        "/periods/2026-11/close", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert store.redis.keys("*") == []


def test_preview_builds_every_document_and_sends_none(api: Api) -> None:
    answer = api.client.post(
        "/periods/2026-11/close", params={"preview": "true"}, json={"invoices": as_json(PERIOD)}
    )
    assert answer.status_code == 202
    body = answer.json()
    # As at a close, an invoice whose group has no Heeros export is shown, not exported.
    nowhere = len(PERIOD) - len(ROUTED)
    assert body["preview"] is True and body["queued"] == 0 and body["failed"] == nowhere
    assert body["per_export"] == _expected_per_export(PERIOD)
    assert api.tasks() == []
    run = api.client.get(f"/runs/{body['run']}").json()
    assert run["preview"] is True and run["state"] == "failed"  # customer 1004's invoices
    assert api.store.period_run("2026-11") is None
    assert close(api, as_json(PERIOD)).json()["existing"] is False


# -- exporting again ------------------------------------------------------------------------


def test_exporting_single_invoices_again_is_a_new_run_of_those(api: Api) -> None:
    close(api, as_json(PERIOD))
    api.tasks()
    numbers = [PERIOD[0].number, PERIOD[3].number, PERIOD[0].number]
    answer = api.client.post("/exports", json={"invoices": numbers})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["run"] == "2026-11-0002" and body["total"] == 2
    assert {item.partition("/")[0] for _, item in api.tasks()} == set(numbers)


def test_exporting_a_whole_period_again(api: Api) -> None:
    first = close(api, as_json(PERIOD)).json()
    api.tasks()
    answer = api.client.post("/exports", json={"period": "2026-11"})
    assert answer.status_code == 202
    body = answer.json()
    assert body["run"] == "2026-11-0002" and body["per_export"] == first["per_export"]
    assert len(api.tasks()) == first["queued"]
    preview = api.client.post("/exports", json={"period": "2026-11"}, params={"preview": True})
    assert preview.json()["preview"] is True and api.tasks() == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "one of the two"),
        ({"invoices": ["100001"], "period": "2026-11"}, "one of the two"),
        ({"invoices": []}, "body.invoices: List should have at least 1 item"),
        ({"invoices": ["a b"]}, "body.invoices[0]: String should match pattern"),
        ({"invoices": ["100001", "555555", "666666"]}, "no copy is kept of 555555, 666666"),
        ({"period": "2026-01"}, "period: 2026-01 has no invoices: it was never closed"),
    ],
)
def test_bad_export_requests_get_422(api: Api, body: dict[str, Any], fragment: str) -> None:
    close(api, as_json(PERIOD))
    api.tasks()
    answer = api.client.post("/exports", json=body)
    assert answer.status_code == 422
    assert fragment in answer.json()["detail"]
    assert api.tasks() == []


# -- re-queue and the runs' figures ---------------------------------------------------------


def test_requeue_sends_failed_and_unconfirmed_invoices_again(api: Api) -> None:
    run = close(api, as_json(ROUTED[:4])).json()["run"]
    api.tasks()
    store = api.store
    store.transition(
        run,
        "100001/0",
        State.FAILED,
        export_index=0,
        kind="unavailable",
        attempts="3",
        message="down",
    )
    store.transition(run, "100002/1", State.SENDING, export_index=1)
    store.transition(run, "100002/1", State.UNCONFIRMED, export_index=1, heeros_id="H-2")
    store.transition(run, "100004/1", State.EXPORTED, export_index=1)
    store.transition(
        run, "100003/0", State.FAILED, export_index=0, kind="invoice", message="refused at intake"
    )
    answer = api.client.post(f"/runs/{run}/requeue")
    assert answer.status_code == 202
    assert answer.json() == {"run": run, "failed": 1, "unconfirmed": 1, "total": 2}
    refused = store.item(run, "100003/0")
    assert refused is not None and refused.message == "refused at intake"
    assert sorted(api.tasks()) == [(run, "100001/0"), (run, "100002/1")]
    failed = store.item(run, "100001/0")
    assert failed is not None and failed.state is State.SENDING and failed.message is None
    exported = store.item(run, "100004/1")
    assert exported is not None and exported.state is State.EXPORTED
    page = api.client.get(f"/runs/{run}/invoices", params={"state": "failed"}).json()
    assert [entry["item"] for entry in page["invoices"]] == ["100003/0"]


def test_requeue_of_an_unknown_run_or_a_preview(api: Api) -> None:
    assert api.client.post("/runs/2026-11-0009/requeue").status_code == 404
    preview = api.client.post(
        "/periods/2026-11/close", params={"preview": True}, json={"invoices": as_json(PERIOD[:2])}
    ).json()
    answer = api.client.post(f"/runs/{preview['run']}/requeue")
    assert answer.status_code == 409 and "preview" in answer.json()["detail"]


def test_runs_and_their_invoices(api: Api) -> None:
    first = close(api, as_json(PERIOD)).json()["run"]
    second = close(api, as_json(list(sample_invoices(3, first=300001))), "2026-12").json()["run"]
    runs = api.client.get("/runs").json()
    assert [r["run"] for r in runs] == [second, first]
    assert api.client.get("/runs", params={"limit": 1}).json()[0]["run"] == second
    run = api.client.get(f"/runs/{first}").json()
    nowhere = sum(1 for i in PERIOD if i.customer.customer_number == "1004")
    assert run["state"] == "running" and run["in_progress"] == run["total"] - nowhere
    assert run["failed"] == nowhere
    assert run["by_export"]["Heeros (API)"] == {"queued": run["per_export"]["Heeros (API)"]}
    page = api.client.get(f"/runs/{first}/invoices", params={"state": "queued", "count": 3})
    assert page.status_code == 200
    entries = page.json()["invoices"]
    assert entries and all(e["state"] == "queued" and e["run"] == first for e in entries)


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/runs/2026-11-0009", {}, 404),
        ("/runs/2026-11-0009/invoices", {"state": "failed"}, 404),
        ("/runs/2026-11-0001/invoices", {}, 422),
        ("/runs/2026-11-0001/invoices", {"state": "lost"}, 422),
        ("/runs/2026-11-0001/invoices", {"state": "failed", "count": 0}, 422),
        ("/runs/2026-11-0001/invoices", {"state": "failed", "cursor": -1}, 422),
        ("/runs", {"limit": 0}, 422),
        ("/runs/bad%20id", {}, 422),
    ],
)
def test_bad_reads_get_4xx(api: Api, path: str, params: dict[str, Any], status: int) -> None:
    close(api, as_json(PERIOD[:2]))
    answer = api.client.get(path, params=params)
    assert answer.status_code == status
    assert answer.json()["detail"]


def test_an_unreachable_store_is_503() -> None:
    settings = Settings(broker_url="memory://", api_token=SecretStr(TOKEN))
    client = redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    unreachable = StatusStore(client, prefix="t")
    application = create_api(
        settings, celery_app=create_app(settings), store=unreachable, config=export_config()
    )
    http = TestClient(application, headers={"Authorization": f"Bearer {TOKEN}"})
    answer = http.get("/runs/2026-11-0001")
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert close(Api(http, unreachable, create_app(settings)), as_json(PERIOD)).status_code == 503


def test_no_answer_holds_the_client_key_or_the_token(api: Api) -> None:
    texts = [
        close(api, as_json(PERIOD)).text,
        close(api, as_json(PERIOD)).text,
        api.client.get("/runs").text,
        api.client.get("/runs/2026-11-0001").text,
        api.client.get("/openapi.json").text,
        api.client.post("/exports", json={"invoices": ["nope"]}).text,
    ]
    for text in texts:
        assert CLIENT_KEY not in text and TOKEN not in text


def test_the_dashboard_metrics_and_health_are_mounted(api: Api) -> None:
    bare = TestClient(api.client.app)
    assert bare.get("/healthz").json() == {"status": "ok"}
    assert bare.get("/", follow_redirects=False).headers["location"] == "/dashboard/"
    login = bare.get("/dashboard/", follow_redirects=False)
    assert login.status_code in (302, 303, 307) and "/dashboard/login" in login.headers["location"]
    assert "<form" in bare.get("/dashboard/login").text
    assert bare.get("/metrics").status_code == 401
    scraped = api.client.get("/metrics")
    assert scraped.status_code == 200 and "heeros_polls_pending" in scraped.text
    assert bare.get("/runs").status_code == 401
