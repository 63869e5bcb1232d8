"""A streamed close through the API: NDJSON and archives of Opter XML, read in batches."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from producer.http.api import create_api
from producer.operations import streams
from producer.operations.samples import sample_invoices
from tests.producer.http.test_api import (
    PERIOD,
    ROUTED,
    TOKEN,
    Api,
    api,
    as_json,
    export_config,
    published,
    waiting,
)
from worker.celery.app import create_app
from worker.celery.tasks import EXPRESS_QUEUE, SEND_QUEUE
from worker.config.settings import Settings
from worker.documents.opterxml import serialize_invoice
from worker.state.aggregator import summarize
from worker.state.keys import State

__all__ = ["api"]  # the fixture, shared with the API's other tests

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

NDJSON = {"Content-Type": "application/x-ndjson"}


def ndjson(invoices: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(invoice).encode() + b"\n" for invoice in invoices)


def archive(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def queues(api: Api) -> dict[str, list[str]]:
    """The items waiting in each send queue (taken off it)."""
    return {name: [item for _, item in sent] for name, sent in waiting(api.app).items()}


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(streams, "BATCH", 3)
    yield 3


def test_an_ndjson_close_records_and_queues_every_invoice(api: Api) -> None:
    answer = api.client.post(
        "/periods/2026-11/close", content=ndjson(as_json(PERIOD)), headers=NDJSON
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    run = body["run"]
    assert answer.headers["Location"] == f"/runs/{run}"
    assert body["total"] == len(PERIOD)
    assert body["queued"] == len(ROUTED)
    assert body["failed"] == len(PERIOD) - len(ROUTED)
    strict = sum(1 for i in ROUTED if i.customer.customer_number == "1002")
    assert body["per_export"] == {"Heeros (API)": len(ROUTED) - strict, "Heeros (strict)": strict}
    assert {r["number"] for r in body["rejected"]} == {
        i.number for i in PERIOD if i.customer.customer_number == "1004"
    }
    # One batch: a small run, on the express queue.
    found = queues(api)
    assert sorted(found) == [EXPRESS_QUEUE]
    assert len(found[EXPRESS_QUEUE]) == len(ROUTED)
    summary = summarize(api.store, run)
    assert summary is not None
    assert not summary.receiving
    assert summary.total == len(PERIOD)
    assert summary.invoices == len(PERIOD)
    assert api.store.period_invoices("2026-11") == sorted(i.number for i in PERIOD)
    view = api.client.get(f"/runs/{run}").json()
    assert view["receiving"] is False
    assert view["total"] == len(PERIOD)


def test_a_stream_of_several_batches_goes_to_the_send_queue(api: Api, small_batches: int) -> None:
    invoices = [i for i in ROUTED if i.customer.customer_number != "1002"]
    answer = api.client.post(
        "/periods/2026-11/close", content=ndjson(as_json(invoices)), headers=NDJSON
    )
    assert answer.status_code == 202, answer.text
    found = queues(api)
    assert sorted(found) == [SEND_QUEUE]
    assert len(found[SEND_QUEUE]) == len(invoices) > small_batches
    summary = summarize(api.store, answer.json()["run"])
    assert summary is not None
    assert summary.total == len(invoices)
    assert summary.counts[State.QUEUED.value] == len(invoices)
    assert summary.by_export == {"Heeros (API)": {State.QUEUED.value: len(invoices)}}


def test_bad_lines_fail_alone_and_the_rest_is_exported(api: Api) -> None:
    good = as_json(ROUTED[:3])
    broken = {**as_json(ROUTED[3:4])[0], "number": ""}
    body = (
        ndjson(good[:1])
        + b"{not json\n"
        + b"\n"
        + ndjson([broken])
        + b"[1, 2]\n"
        + ndjson(good[1:])
    )
    answer = api.client.post("/periods/2026-11/close", content=body, headers=NDJSON)
    assert answer.status_code == 202, answer.text
    result = answer.json()
    assert result["queued"] == 3
    assert result["failed"] == 3
    reasons = " | ".join(r["reason"] for r in result["rejected"])
    assert "body line 2: not valid JSON" in reasons
    assert "not an object" in reasons
    summary = summarize(api.store, result["run"])
    assert summary is not None
    assert summary.total == 6
    assert summary.counts[State.FAILED.value] == 3


def test_a_number_given_twice_is_exported_once(api: Api, small_batches: int) -> None:
    first = as_json(ROUTED[:1])
    again = first[0]
    body = ndjson(first + as_json(ROUTED[1:6]) + [again])
    answer = api.client.post("/periods/2026-11/close", content=body, headers=NDJSON)
    assert answer.status_code == 202, answer.text
    result = answer.json()
    number = ROUTED[0].number
    assert result["queued"] == 6
    assert [r["number"] for r in result["rejected"]] == [f"{number}#2"]
    assert "appears more than once" in result["rejected"][0]["reason"]
    sent = [item.split("/")[0] for item in queues(api)[SEND_QUEUE]]
    assert sent.count(number) == 1


def test_an_archive_of_opter_xml_files_closes_the_period(api: Api) -> None:
    files = {f"period/{i.number}.xml": serialize_invoice(i) for i in ROUTED[:4]}
    files["period/readme.txt"] = b"not an invoice"
    files["period/broken.xml"] = b"<Invoice><oops></Invoice>"
    for content_type, mode in [("application/gzip", "w:gz"), ("application/x-tar", "w")]:
        period = "2026-11" if mode == "w:gz" else "2026-12"
        answer = api.client.post(
            f"/periods/{period}/close",
            content=archive(files, mode),
            headers={"Content-Type": content_type},
        )
        assert answer.status_code == 202, answer.text
        result = answer.json()
        assert result["queued"] == 4
        assert result["failed"] == 1
        assert "broken.xml" in result["rejected"][0]["reason"]
        queues(api)
        # A number closes in one period only: the second archive's are refused.
        api.store.redis.flushall()


def test_an_archive_cut_short_keeps_what_arrived_and_says_so(api: Api, small_batches: int) -> None:
    files = {f"{i.number}.xml": serialize_invoice(i) for i in ROUTED[:8]}
    whole = archive(files, "w")
    answer = api.client.post(
        "/periods/2026-11/close",
        content=whole[: len(whole) // 2 + 100],
        headers={"Content-Type": "application/x-tar"},
    )
    assert answer.status_code == 202, answer.text
    result = answer.json()
    assert 0 < result["queued"] < 8
    assert any("broke off" in warning for warning in result["warnings"])
    summary = summarize(api.store, result["run"])
    assert summary is not None
    assert not summary.receiving
    assert summary.total == result["total"]


def test_an_archive_cut_short_before_its_first_batch_closes_nothing(api: Api) -> None:
    whole = archive({f"{i.number}.xml": serialize_invoice(i) for i in ROUTED[:4]}, "w")
    answer = api.client.post(
        "/periods/2026-11/close",
        content=whole[: len(whole) // 2],
        headers={"Content-Type": "application/x-tar"},
    )
    assert answer.status_code == 422
    assert "not a readable tar archive" in answer.json()["detail"]
    assert api.store.period_run("2026-11") is None
    assert queues(api) == {}


def test_an_empty_stream_closes_nothing_and_leaves_the_period_open(api: Api) -> None:
    answer = api.client.post("/periods/2026-11/close", content=b"\n\n", headers=NDJSON)
    assert answer.status_code == 422
    assert "no invoice" in answer.json()["detail"]
    assert api.store.period_run("2026-11") is None
    again = api.client.post(
        "/periods/2026-11/close", content=ndjson(as_json(ROUTED[:2])), headers=NDJSON
    )
    assert again.status_code == 202


def test_closing_again_answers_with_the_run_it_has(api: Api) -> None:
    body = ndjson(as_json(ROUTED[:2]))
    first = api.client.post("/periods/2026-11/close", content=body, headers=NDJSON)
    again = api.client.post("/periods/2026-11/close", content=body, headers=NDJSON)
    assert again.status_code == 200
    assert again.json()["run"] == first.json()["run"]
    assert again.json()["existing"] is True
    assert len(queues(api)[EXPRESS_QUEUE]) == 2


def test_a_streamed_preview_builds_everything_and_sends_nothing(api: Api) -> None:
    answer = api.client.post(
        "/periods/2026-11/close?preview=true", content=ndjson(as_json(ROUTED)), headers=NDJSON
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["preview"] is True
    assert queues(api) == {}


def test_a_stream_may_be_larger_than_a_json_body(store: Any) -> None:
    settings = Settings(broker_url="memory://", api_token=SecretStr(TOKEN))
    app = create_app(settings)
    published(app)
    application = create_api(
        settings, celery_app=app, store=store, config=export_config(), max_body=4000
    )
    body = ndjson(as_json(ROUTED[:3]))
    assert len(body) > 4000
    with TestClient(application, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        too_large = client.post("/periods/2026-11/close", json={"invoices": as_json(ROUTED[:3])})
        assert too_large.status_code == 413
        streamed = client.post("/periods/2026-11/close", content=body, headers=NDJSON)
        assert streamed.status_code == 202, streamed.text
        assert streamed.json()["queued"] == 3
    published(app)


def test_many_invoices_stream_in_bounded_batches(api: Api, small_batches: int) -> None:
    invoices = [i for i in sample_invoices(40) if i.customer.customer_number != "1004"]
    answer = api.client.post(
        "/periods/2026-11/close", content=ndjson(as_json(invoices)), headers=NDJSON
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["queued"] == len(invoices)
    assert len(queues(api)[SEND_QUEUE]) == len(invoices)
