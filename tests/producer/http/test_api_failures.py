"""``GET /runs/{run}/failures``: a run's failures grouped by message, over the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from producer.http.api import create_api
from tests.producer.http.test_api import TOKEN, export_config, published
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.errors import MESSAGE_SEND_REFUSED
from worker.state.keys import State, item_id
from worker.state.store import RunRecord, StatusStore

SEND_503 = MESSAGE_SEND_REFUSED.format("HTTP_503", "Heeros is down")


@pytest.fixture
def client(store: StatusStore) -> Iterator[TestClient]:
    settings = Settings(broker_url="memory://", api_token=SecretStr(TOKEN))
    app = create_app(settings)
    published(app)
    application = create_api(settings, celery_app=app, store=store, config=export_config())
    with TestClient(application, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


def test_failures_are_grouped_by_message(client: TestClient, store: StatusStore) -> None:
    items = [(item_id(str(500 + n), 0), str(500 + n), 0) for n in range(12)]
    store.create_run(
        RunRecord(run="R", period="2026-11", total=12, created=1.0, exports=["A"]), items, {}
    )
    for item, _, _ in items[:10]:
        store.transition(
            "R", item, State.FAILED, export_index=0, kind="unavailable", message=SEND_503
        )
    answer = client.get("/runs/R/failures")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["run"], body["problems"], body["counted"], body["complete"]) == ("R", 10, 10, True)
    (group,) = body["groups"]
    assert (group["count"], group["message"], group["state"], group["kind"]) == (
        10,
        SEND_503,
        "failed",
        "unavailable",
    )
    assert group["examples"] == ["500", "501", "502", "503", "504"]
    assert group["requeueable"] is True and len(group["key"]) == 16
    assert client.get("/runs/nope/failures").status_code == 404
    assert client.get("/runs/R/failures", headers={"Authorization": "Bearer x"}).status_code == 401
