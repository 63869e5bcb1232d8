"""The dashboard over a fake Redis and a Celery app on the in-memory broker."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import fakeredis
import pytest
from celery import Celery
from fastapi import FastAPI
from fastapi.testclient import TestClient

from producer.http import dashboard
from producer.http.auth import COOKIE, SESSION_S, Sessions, safe_next
from producer.http.dashboard import create_dashboard
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.errors import MESSAGE_INCOMPLETE, MESSAGE_NOT_CONFIRMED, validation_message
from worker.state.keys import State, item_id
from worker.state.store import RunRecord, StatusStore

TOKEN = "dashboard-token-7301"
CLIENT_KEY = "client-key-NEVER-SHOWN-5520"
RUN = "2026-11-0001"
EXPORTS = ["Heeros (API)", "Heeros (strict)"]
SEND_503 = (
    "It was not possible to send the invoice to Heeros. Error code from Heeros: HTTP_503. "
    "Error message from Heeros: Heeros answered HTTP 503: SERVICE_UNAVAILABLE: Heeros is down"
)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HEEROS_CLIENT_KEY", CLIENT_KEY)
    return Settings(broker_url="memory://", api_token=TOKEN, key_prefix="t")


@pytest.fixture
def celery_app(settings: Settings) -> Celery:
    return create_app(settings)


@pytest.fixture
def client(settings: Settings, store: StatusStore, celery_app: Celery) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(create_dashboard(settings, store=store, celery_app=celery_app))
    with TestClient(app) as test_client:
        yield test_client


def _login(client: TestClient, token: str = TOKEN) -> None:
    answer = client.post("/login", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text


def _make_run(store: StatusStore, run: str = RUN, count: int = 10) -> list[str]:
    """10 invoices: 5 exported, 2 failed, 1 incomplete, 1 unconfirmed, 1 queued."""
    items = [(item_id(str(1000 + n), n % 2), str(1000 + n), n % 2) for n in range(count)]
    store.create_run(
        RunRecord(run=run, period="2026-11", total=count, created=time.time(), exports=EXPORTS),
        items,
        {},
    )
    ids = [item for item, _, _ in items]
    for n in range(5):
        store.transition(run, ids[n], State.EXPORTED, export_index=n % 2, heeros_id=f"HX-{n}")
    store.transition(
        run,
        ids[5],
        State.FAILED,
        export_index=1,
        kind="validation",
        message=validation_message("1005", 3),
    )
    store.transition(run, ids[6], State.SENDING, export_index=0)
    store.transition(
        run, ids[6], State.FAILED, export_index=0, kind="unavailable", message=SEND_503
    )
    store.transition(
        run,
        ids[7],
        State.INCOMPLETE,
        export_index=1,
        heeros_id="HX-7",
        message=MESSAGE_INCOMPLETE.format("HX-7"),
    )
    store.transition(
        run,
        ids[8],
        State.UNCONFIRMED,
        export_index=0,
        heeros_id="HX-8",
        message=MESSAGE_NOT_CONFIRMED.format("HX-8"),
    )
    return ids


def _finish(store: StatusStore, ids: list[str], run: str = RUN) -> None:
    store.transition(run, ids[9], State.EXPORTED, export_index=1)


PAGES = [
    ("get", "/"),
    ("get", "/runs-rows"),
    ("get", f"/runs/{RUN}"),
    ("get", f"/runs/{RUN}/events"),
    ("get", f"/runs/{RUN}/summary"),
    ("get", f"/runs/{RUN}/problems"),
    ("get", f"/runs/{RUN}/items?state=failed"),
    ("get", f"/runs/{RUN}/search?number=1005"),
    ("post", f"/runs/{RUN}/requeue-form"),
]


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_every_page_but_login_needs_a_session(
    client: TestClient, store: StatusStore, method: str, path: str
) -> None:
    _make_run(store)
    answer = client.request(method, path, follow_redirects=False)
    assert answer.status_code == 303
    expected = "/login?next=" if method == "get" else "/login"
    assert answer.headers["location"].startswith(expected)
    assert client.get(answer.headers["location"]).status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/runs/{RUN}/items", 422),
        (f"/runs/{RUN}/items?state=failed&cursor=x", 400),
        ("/runs/x?requeued=y", 422),
    ],
)
def test_without_a_session_even_a_bad_query_goes_to_the_login(
    client: TestClient, path: str, status: int
) -> None:
    answer = client.get(path, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
    _login(client)
    assert client.get(path).status_code == status


def test_a_wrong_token_is_refused(client: TestClient) -> None:
    answer = client.post("/login", data={"token": "guess"}, follow_redirects=False)
    assert answer.status_code == 401
    assert "That token is not right." in answer.text
    assert COOKIE not in answer.headers.get("set-cookie", "")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_session_cookie_holds_no_token(client: TestClient) -> None:
    answer = client.post("/login", data={"token": TOKEN, "next": "/runs/x"}, follow_redirects=False)
    assert answer.headers["location"] == "/runs/x"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie
    assert client.get("/", follow_redirects=False).status_code == 200


def test_a_forged_or_expired_cookie_is_refused(client: TestClient) -> None:
    sessions = Sessions(TOKEN)
    valid = sessions.issue()
    assert sessions.check(valid) is not None
    assert sessions.check(valid[:-1] + ("0" if valid[-1] != "0" else "1")) is None
    assert sessions.check(Sessions("another-token").issue()) is None
    assert sessions.check(sessions.issue(now=time.time() - SESSION_S - 5)) is None
    assert sessions.check("v1.9999999999.nonce.sig") is None
    assert sessions.check("") is None
    client.cookies.set(COOKIE, Sessions("another-token").issue())
    assert client.get("/", follow_redirects=False).status_code == 303


def test_logout_ends_the_session(client: TestClient) -> None:
    _login(client)
    answer = client.post("/logout", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_without_a_configured_token_nobody_logs_in(store: StatusStore, celery_app: Celery) -> None:
    app = FastAPI()
    app.include_router(
        create_dashboard(Settings(broker_url="memory://"), store=store, celery_app=celery_app)
    )
    client = TestClient(app)
    assert "Logging in is disabled" in client.get("/login").text
    assert client.post("/login", data={"token": ""}, follow_redirects=False).status_code == 401


def test_no_open_redirect_after_login() -> None:
    assert safe_next("/runs/1") == "/runs/1"
    for target in ("https://evil.example", "//evil.example", "/\\evil", "", None, "runs"):
        assert safe_next(target) is None


def test_the_runs_list_shows_figures_and_bars(client: TestClient, store: StatusStore) -> None:
    ids = _make_run(store)
    store.create_run(
        RunRecord(run="2026-12-0001", period="2026-12", total=1, created=1.0, exports=["A"]),
        [("1/0", "1", 0)],
        {},
    )
    _login(client)
    page = client.get("/").text
    row = re.search(r'<tr data-run="2026-11-0001">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r'<td class="n">(\d+)</td>', row.group(1))
    assert cells == ["10", "5", "4", "1"]  # total, exported, failed, in progress
    assert 'class="bar running"' in row.group(1)
    _finish(store, ids)
    page = client.get("/runs-rows").text
    assert 'class="bar failed"' in page
    assert "The invoice export failed: 4 of 10 invoices were not exported (6 exported)" in page


def test_a_complete_run_is_green(client: TestClient, store: StatusStore) -> None:
    items = [(item_id(str(n), 0), str(n), 0) for n in range(3)]
    store.create_run(
        RunRecord(run="G", period="2026-11", total=3, created=1.0, exports=["A"]), items, {}
    )
    for item, _, _ in items:
        store.transition("G", item, State.EXPORTED, export_index=0)
    _login(client)
    page = client.get("/runs/G").text
    assert '<div class="bar complete" data-state="complete" id="bar"' in page
    assert 'style="width: 100.0%"' in page
    assert "Export complete: all 3 invoices exported" in page


def test_a_run_page_lists_problems_with_their_exact_messages(
    client: TestClient, store: StatusStore
) -> None:
    _make_run(store)
    _login(client)
    page = client.get(f"/runs/{RUN}").text
    assert '<b data-figure="total">10</b>' in page
    assert '<b data-figure="exported">5</b>' in page
    assert '<b data-figure="failed">4</b>' in page
    assert '<b data-figure="in_progress">1</b>' in page
    assert 'data-export="Heeros (API)" data-state="exported">3<' in page
    assert 'data-export="Heeros (strict)" data-state="failed">1<' in page
    for text in (
        validation_message("1005", 3),
        SEND_503,
        MESSAGE_INCOMPLETE.format("HX-7"),
        MESSAGE_NOT_CONFIRMED.format("HX-8"),
    ):
        assert f'<td class="message">{text}</td>' in page
    row = re.search(r'<tr data-item="1008/0">(.*?)</tr>', page, re.S)
    assert row is not None
    assert "<td>HX-8</td>" in row.group(1) and "unconfirmed" in row.group(1)
    attempts = re.search(r'<tr data-item="1006/0">.*?<td class="n">(\d+)</td>', page, re.S)
    assert attempts is not None and attempts.group(1) == "1"
    assert "Re-queue failed" in page and 'id="requeue"\n      >' in page
    fragment = client.get(f"/runs/{RUN}/problems").text
    assert SEND_503 in fragment and "<html" not in fragment


def test_messages_are_escaped(client: TestClient, store: StatusStore) -> None:
    ids = _make_run(store)
    store.transition(
        RUN,
        ids[9],
        State.FAILED,
        export_index=1,
        kind="other",
        message="<script>alert(1)</script>",
    )
    _login(client)
    page = client.get(f"/runs/{RUN}").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_pages_carry_a_strict_content_security_policy(
    client: TestClient, store: StatusStore
) -> None:
    _make_run(store)
    _login(client)
    answer = client.get(f"/runs/{RUN}")
    policy = answer.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in answer.text
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"


def test_items_of_a_state_are_paged(client: TestClient, store: StatusStore) -> None:
    items = [(item_id(str(5000 + n), 0), str(5000 + n), 0) for n in range(250)]
    store.create_run(
        RunRecord(run="P", period="2026-11", total=250, created=1.0, exports=["A"]), items, {}
    )
    for item, number, _ in items:
        store.transition("P", item, State.FAILED, export_index=0, kind="x", message=f"m{number}")
    _login(client)
    seen: set[str] = set()
    url = "/runs/P/items?state=failed"
    while url:
        page = client.get(url).text
        seen |= set(re.findall(r'<tr data-item="(\d+)/0">', page))
        found = re.search(r'<a href="([^"]+)">Next page</a>', page)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert len(seen) == 250
    assert client.get("/runs/P/items?state=nonsense").status_code == 404


def test_search_by_invoice_number(client: TestClient, store: StatusStore) -> None:
    _make_run(store)
    _login(client)
    page = client.get(f"/runs/{RUN}/search", params={"number": "1005"}).text
    assert '<tr data-item="1005/1">' in page
    assert validation_message("1005", 3) in page
    page = client.get(f"/runs/{RUN}/search", params={"number": "1000"}).text
    assert '<tr data-item="1000/0">' in page and "<td>HX-0</td>" in page
    page = client.get(f"/runs/{RUN}/search", params={"number": "424242"}).text
    assert 'id="not-found"' in page


def test_an_unknown_run(client: TestClient) -> None:
    _login(client)
    assert client.get("/runs/nope").status_code == 404
    assert client.get("/runs/nope/summary").status_code == 404
    assert client.get("/runs/nope/events").status_code == 404


def test_summary_json_and_events(client: TestClient, store: StatusStore) -> None:
    ids = _make_run(store)
    _finish(store, ids)
    _login(client)
    summary = client.get(f"/runs/{RUN}/summary").json()
    assert (summary["total"], summary["exported"], summary["failed"]) == (10, 6, 4)
    assert summary["state"] == "failed" and summary["width"] == 100.0
    # a finished run's stream sends its figures once and ends; the browser reconnects slowly
    with client.stream("GET", f"/runs/{RUN}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())
    assert body.startswith("retry: 5000\n\n")
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert len(events) == 1 and events[0]["statement"].startswith("The invoice export failed")


def test_a_running_run_streams_until_the_stream_ends(
    client: TestClient, store: StatusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "EVENT_INTERVAL_S", 0.01)
    monkeypatch.setattr(dashboard, "STREAM_S", 0.2)
    _make_run(store)
    _login(client)
    with client.stream("GET", f"/runs/{RUN}/events") as stream:
        body = "".join(stream.iter_text())
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert len(events) >= 3
    assert {event["state"] for event in events} == {"running"}
    assert events[-1]["in_progress"] == 1 and events[-1]["width"] == 90.0


def test_the_requeue_button_needs_its_form_token(client: TestClient, store: StatusStore) -> None:
    _make_run(store)
    _login(client)
    path = f"/runs/{RUN}/requeue-form"
    assert client.post(path, data={}, follow_redirects=False).status_code == 403
    assert client.post(path, data={"csrf": "0" * 32}, follow_redirects=False).status_code == 403
    page = client.get(f"/runs/{RUN}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    other_site = {"Origin": "https://evil.example"}
    assert (
        client.post(
            path, data={"csrf": csrf.group(1)}, headers=other_site, follow_redirects=False
        ).status_code
        == 403
    )
    assert store.members(RUN, State.FAILED)  # nothing moved yet


def test_the_requeue_button_queues_failed_and_unconfirmed_again(
    client: TestClient, store: StatusStore
) -> None:
    _make_run(store)
    _login(client)
    page = client.get(f"/runs/{RUN}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    answer = client.post(
        f"/runs/{RUN}/requeue-form", data={"csrf": csrf.group(1)}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/runs/{RUN}?requeued=3"
    assert store.members(RUN, State.FAILED) == []
    assert store.members(RUN, State.UNCONFIRMED) == []
    assert store.members(RUN, State.QUEUED) == ["1005/1", "1009/1"]
    assert store.members(RUN, State.SENDING) == ["1006/0", "1008/0"]
    page = client.get(answer.headers["location"]).text
    assert "Re-queued 3 invoices." in page
    assert 'id="requeue"\n      hidden>' in page  # the incomplete one is Heeros's to fix
    assert client.post("/runs/nope/requeue-form", data={"csrf": csrf.group(1)}).status_code == 404


def test_no_client_key_or_token_on_any_page(client: TestClient, store: StatusStore) -> None:
    _finish(store, _make_run(store))  # a finished run's stream ends
    seen = [client.get("/login").text]
    _login(client)
    for method, path in PAGES:
        if method == "get":
            seen.append(client.get(path).text)
    seen.append(client.get(f"/runs/{RUN}/search?number=1000").text)
    assert len(seen) == len(PAGES) + 1
    for text in seen:
        assert CLIENT_KEY not in text
        assert TOKEN not in text
    assert all(TOKEN not in value for value in client.cookies.values())


def test_links_follow_the_mount_prefix(
    settings: Settings, store: StatusStore, celery_app: Celery
) -> None:
    _make_run(store)
    app = FastAPI()
    app.include_router(
        create_dashboard(settings, store=store, celery_app=celery_app), prefix="/dashboard"
    )
    client = TestClient(app)
    answer = client.get("/dashboard/", follow_redirects=False)
    assert answer.headers["location"] == "/dashboard/login?next=%2Fdashboard%2F"
    login = client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert login.headers["location"] == "/dashboard/"
    page = client.get("/dashboard/").text
    assert f'href="/dashboard/runs/{RUN}"' in page
    assert 'data-src="/dashboard/runs-rows"' in page


def test_a_run_of_100000_invoices_renders_in_well_under_a_second(
    client: TestClient, fake_redis: fakeredis.FakeRedis, store: StatusStore
) -> None:
    count = 100_000
    items = [(item_id(str(1_000_000 + n), 0), str(1_000_000 + n), 0) for n in range(count)]
    store.create_run(
        RunRecord(run="BIG", period="2026-11", total=count, created=1.0, exports=["A"]), items, {}
    )
    keys = store.keys
    queued = keys.state("BIG", State.QUEUED)
    plan = [(State.EXPORTED, 90_000), (State.FAILED, 6_000), (State.UNCONFIRMED, 1_000)]
    pipe = fake_redis.pipeline(transaction=False)
    start = 0
    for state, size in plan:
        chunk = [item for item, _, _ in items[start : start + size]]
        pipe.srem(queued, *chunk)
        pipe.sadd(keys.state("BIG", state), *chunk)
        pipe.hset(keys.by_export("BIG"), f"0:{state.value}", size)
        for item in chunk[:200] if state is not State.EXPORTED else []:
            pipe.hset(keys.item("BIG", item), mapping={"state": state.value, "message": "m"})
        start += size
    pipe.hset(keys.by_export("BIG"), "0:queued", count - start)
    pipe.hset(keys.kinds("BIG"), "unavailable", 6_000)
    pipe.execute()
    _login(client)
    for path in ("/runs/BIG", "/runs/BIG/summary", "/", "/runs/BIG/problems"):
        began = time.perf_counter()
        answer = client.get(path)
        elapsed = time.perf_counter() - began
        assert answer.status_code == 200
        assert elapsed < 1.0, f"{path} took {elapsed:.2f} s"
    summary = client.get("/runs/BIG/summary").json()
    assert (summary["total"], summary["exported"], summary["failed"]) == (100_000, 90_000, 7_000)
    assert summary["in_progress"] == 3_000 and summary["state"] == "running"
    # written without the transition script, like a run from before groups: grouped on
    # the fly from its first problems, and said so
    assert "Grouped from the first 1000 of 7000" in client.get("/runs/BIG").text
    # as the transitions keep them: read whole in one round trip
    fake_redis.hset(
        keys.groups("BIG"),
        mapping={
            "1:n": 6000,
            "1:state": "failed",
            "1:kind": "unavailable",
            "1:message": "m",
            "1:first": 1.0,
            "1:last": 2.0,
            "1:examples": "1090000/0",
            "2:n": 1000,
            "2:state": "unconfirmed",
            "2:kind": "",
            "2:message": "u",
            "2:first": 1.0,
            "2:last": 2.0,
            "2:examples": "1096000/0",
        },
    )
    began = time.perf_counter()
    page = client.get("/runs/BIG").text
    assert time.perf_counter() - began < 1.0
    assert "Grouped from the first" not in page
    assert re.findall(r'<td class="n count">(\d+)</td>', page) == ["6000", "1000"]


# -- failures by message, pace, runs by export, page cursors --------------------------------


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def _group_rows(page: str) -> dict[str, str]:
    """The failures-by-message rows: group key -> the row's HTML."""
    return dict(re.findall(r'<tr data-group="([^"]+)">(.*?)</tr>', page, re.S))


def _outage_run(store: StatusStore) -> list[str]:
    """40 invoices failed with one HTTP_503 after sending, 2 with another message, 3 queued."""
    items = [(item_id(str(2000 + n), 0), str(2000 + n), 0) for n in range(45)]
    store.create_run(
        RunRecord(run="O", period="2026-11", total=45, created=time.time(), exports=EXPORTS),
        items,
        {},
    )
    ids = [item for item, _, _ in items]
    for item in ids[:40]:
        store.transition("O", item, State.SENDING, export_index=0)
        store.transition(
            "O", item, State.FAILED, export_index=0, kind="unavailable", message=SEND_503
        )
    for item in ids[40:42]:
        number = item.split("/")[0]
        message = validation_message(number, 2)
        store.transition(
            "O", item, State.FAILED, export_index=0, kind="validation", message=message
        )
    return ids


def test_failures_are_grouped_by_message_each_with_its_requeue(
    client: TestClient, store: StatusStore
) -> None:
    ids = _outage_run(store)
    _login(client)
    page = client.get("/runs/O").text
    rows = _group_rows(page)
    assert len(rows) == 2
    (key,) = [key for key, row in rows.items() if SEND_503 in row]
    row = rows[key]
    assert '<td class="n count">40</td>' in row and "Re-queue these 40" in row
    assert f'name="group" value="{key}"' in row
    assert re.findall(r">(\d+)</a>", row) == ["2000", "2001", "2002", "2003", "2004"]
    (other,) = [row for k, row in rows.items() if k != key]
    assert "&lt;invoice&gt; to Heeros due to validation errors. Number of errors: 2" in other
    assert '<td class="n count">2</td>' in other
    assert '<details id="each">' in page and f'<td class="message">{SEND_503}</td>' in page
    assert _group_rows(client.get("/runs/O/problems").text).keys() == rows.keys()

    answer = client.post(
        "/runs/O/requeue-form",
        data={"csrf": _csrf(page), "group": key},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/runs/O?requeued=40"
    assert store.members("O", State.SENDING) == sorted(ids[:40])  # they had been sent
    assert store.members("O", State.FAILED) == sorted(ids[40:42])
    assert list(_group_rows(client.get("/runs/O").text)) == [k for k in rows if k != key]


def test_a_bad_group_or_a_preview_is_refused(client: TestClient, store: StatusStore) -> None:
    _outage_run(store)
    store.create_run(
        RunRecord(run="PV", period="P", total=1, created=1.0, exports=["A"], preview=True), [], {}
    )
    store.transition("PV", "1/0", State.FAILED, export_index=0, kind="schema", message="bad")
    _login(client)
    csrf = _csrf(client.get("/runs/O").text)
    for group in ("nonsense", "0" * 17, "G" * 16):
        answer = client.post("/runs/O/requeue-form", data={"csrf": csrf, "group": group})
        assert answer.status_code == 400 and 'id="refused"' in answer.text
    preview = client.get("/runs/PV").text
    assert "Re-queue these" not in preview and 'id="requeue"\n      hidden>' in preview
    answer = client.post("/runs/PV/requeue-form", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 409 and "A preview sent nothing" in answer.text
    assert store.members("PV", State.FAILED) == ["1/0"]


@pytest.mark.parametrize("cursor", ["-1", "x", "1.5", " 1", "9223372036854775808", "9" * 40, "١٢"])
def test_a_cursor_that_is_no_page_answers_400(
    client: TestClient, store: StatusStore, cursor: str
) -> None:
    _make_run(store)
    _login(client)
    answer = client.get(f"/runs/{RUN}/items", params={"state": "failed", "cursor": cursor})
    assert answer.status_code == 400
    assert "is not a page of this run" in answer.text
    assert (
        client.get(f"/runs/{RUN}/items?state=failed&cursor=9223372036854775807").status_code == 200
    )


def test_a_running_run_shows_its_rate_time_left_and_chart(
    client: TestClient, store: StatusStore
) -> None:
    ids = _make_run(store)  # 9 of 10 done
    now = time.time()
    for at, done in ((now - 90, 0), (now - 60, 3)):
        store.progress_samples(RUN, done, ended=False, now=at, every_s=5, keep=100)
    _login(client)
    page = client.get(f"/runs/{RUN}").text
    rate = re.search(r'data-pace="rate">([^<]+)<', page)
    left = re.search(r'data-pace="left">([^<]+)<', page)
    assert rate is not None and left is not None
    assert rate.group(1) == "0.10 invoices/s"  # 6 more done in the last minute
    assert left.group(1) == "10 s"  # 1 left
    points = re.search(r'<polyline id="chart-line" points="([^"]*)"', page)
    assert points is not None and len(points.group(1).split()) == 3
    assert '<div class="chart" id="chart">' in page and 'class="pace" title' in page
    summary = client.get(f"/runs/{RUN}/summary").json()
    assert summary["pace"]["rate"] == "0.10 invoices/s" and summary["pace"]["chart"]
    _finish(store, ids)
    page = client.get(f"/runs/{RUN}").text
    assert 'class="pace" hidden' in page  # no rate once it has ended; the chart stays
    assert client.get(f"/runs/{RUN}/summary").json()["pace"]["left"] == "–"


def test_a_run_from_before_samples_has_no_chart(client: TestClient, store: StatusStore) -> None:
    _finish(store, _make_run(store))
    _login(client)
    page = client.get(f"/runs/{RUN}").text
    assert '<div class="chart" id="chart" hidden>' in page
    assert not store.redis.exists(store.keys.progress(RUN))


def test_runs_are_filtered_by_export(client: TestClient, store: StatusStore) -> None:
    _make_run(store)  # both exports
    store.create_run(
        RunRecord(run="2026-12-0001", period="2026-12", total=1, created=2.0, exports=["Other"]),
        [("1/0", "1", 0)],
        {},
    )
    _login(client)
    page = client.get("/").text
    assert re.findall(r'<option value="([^"]*)"', page) == ["", *EXPORTS, "Other"]
    assert re.findall(r'<tr data-run="([^"]+)">', page) == [RUN, "2026-12-0001"]
    page = client.get("/", params={"export": "Other"}).text
    assert re.findall(r'<tr data-run="([^"]+)">', page) == ["2026-12-0001"]
    assert '<option value="Other" selected>' in page
    assert 'data-src="/runs-rows?export=Other"' in page
    rows = client.get("/runs-rows", params={"export": EXPORTS[1]}).text
    assert re.findall(r'<tr data-run="([^"]+)">', rows) == [RUN]
    none = client.get("/", params={"export": "<nope>"}).text
    assert "No run of export &lt;nope&gt; among the recent runs." in none
    assert 'href="/?export=Heeros+%28API%29"' in client.get(f"/runs/{RUN}").text


def test_a_run_id_that_is_not_a_name_is_a_404_not_an_error(client: TestClient) -> None:
    _login(client)
    for run in ("a b-0001", "K1:invoices-0001"):
        for path in (f"/runs/{run}", f"/runs/{run}/summary", f"/runs/{run}/problems"):
            answer = client.get(path)
            assert answer.status_code == 404, (path, answer.status_code, answer.text)
            assert answer.text.startswith("no run"), answer.text
