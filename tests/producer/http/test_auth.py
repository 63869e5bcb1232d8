"""The bearer check and the dashboard's sessions, on small apps of their own and the dashboard."""

# No ``from __future__ import annotations``: a route's annotation names a local dependency.

import asyncio
import hmac
import time
from collections.abc import Callable
from typing import Annotated, Any

import fakeredis
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response, Security
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from starlette.types import Message, Receive, Scope, Send

from producer.http import auth, dashboard
from producer.http.api import create_api
from producer.http.auth import (
    CHALLENGE,
    COOKIE,
    LOGIN_ROUTE,
    SESSION_S,
    BearerGuard,
    Session,
    SessionRoute,
    Sessions,
    bearer_matches,
    bearer_refusal,
    require_bearer,
    safe_next,
    token_matches,
)
from producer.http.dashboard import create_dashboard
from tests.producer.http.test_api import export_config
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.state.sessions import LoginLimits, SessionStore
from worker.state.store import StatusStore

TOKEN = "auth-token-5581-secret"
SECRET = SecretStr(TOKEN)
LIMITS = LoginLimits()


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Every comparison the module makes, still made by :func:`hmac.compare_digest`."""
    calls: list[tuple[Any, Any]] = []
    original = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    return calls


# -- the token and the bearer header --------------------------------------------------------


def test_the_token_is_compared_in_constant_time(compared: list[tuple[Any, Any]]) -> None:
    assert token_matches(TOKEN, SECRET)
    assert token_matches(TOKEN.encode(), TOKEN)
    assert not token_matches(TOKEN + "x", SECRET)
    assert not token_matches("", SECRET)
    assert compared == [
        (TOKEN.encode(), TOKEN.encode()),
        (TOKEN.encode(), TOKEN.encode()),
        ((TOKEN + "x").encode(), TOKEN.encode()),
        (b"", TOKEN.encode()),
    ]


def test_without_a_token_nothing_matches(compared: list[tuple[Any, Any]]) -> None:
    assert not token_matches("", None)
    assert not bearer_matches(f"Bearer {TOKEN}", None)
    assert compared == []


def test_an_empty_token_matches_nothing_not_even_an_empty_bearer() -> None:
    for blank in ("", "  ", SecretStr(""), SecretStr(" ")):
        assert not token_matches("", blank)
        assert not token_matches(b"", blank)
        for header in ("Bearer ", "Bearer", "bearer  ", b"Bearer "):
            assert not bearer_matches(header, blank)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"BEARER  {TOKEN}  ".encode(), True),
        (f"Bearer {TOKEN}".encode(), True),
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer ", False),
        (f"Bearer {TOKEN}x", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("Bearer ünïcode".encode("latin-1"), False),
        ("Bearer ünïcode", False),
        ("Bearer ☃", False),  # not Latin-1: it never came from an HTTP header
    ],
)
def test_the_bearer_header(header: str | bytes | None, expected: bool) -> None:
    assert bearer_matches(header, SECRET) is expected


def test_a_token_beyond_ascii_matches_the_bytes_that_came() -> None:
    token = "tökén"
    sent = f"Bearer {token}".encode()
    assert bearer_matches(sent, token)
    assert bearer_matches(sent.decode("latin-1"), token)  # as Starlette hands it over


def test_the_refusal_names_what_is_wrong() -> None:
    assert bearer_refusal(f"Bearer {TOKEN}", SECRET) is None
    missing = bearer_refusal(None, SECRET)
    assert missing is not None and missing.status_code == 401
    assert missing.headers == {"WWW-Authenticate": CHALLENGE}
    assert "required" in missing.detail
    wrong = bearer_refusal("Bearer nope", SECRET)
    assert wrong is not None and wrong.status_code == 401
    assert wrong.headers == {"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'}
    assert wrong.detail == "the bearer token is not valid" and TOKEN not in wrong.detail


# -- the guard ------------------------------------------------------------------------------


def _run_guard(guard_of: Callable[[Any], BearerGuard], path: str, header: bytes | None) -> Any:
    """Call the guard as a server would; the body must not be read when it refuses."""
    reached: list[str] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])

    async def receive() -> Message:
        raise AssertionError("the guard read the body")

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"authorization", header)] if header is not None else []
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(guard_of(app)(scope, receive, send))
    status = sent[0]["status"] if sent else None
    return reached, status, sent


def test_the_guard_refuses_before_the_app_or_the_body() -> None:
    def guard(app: Any) -> BearerGuard:
        return BearerGuard(app, token=SECRET, public={"/healthz"}, own_auth=("/dashboard",))

    for path in ("/runs", "/unknown", "/healthz/x"):
        reached, status, sent = _run_guard(guard, path, None)
        assert reached == [] and status == 401
        assert (b"www-authenticate", CHALLENGE.encode()) in sent[0]["headers"]
        reached, status, _ = _run_guard(guard, path, b"Bearer nope")
        assert reached == [] and status == 401
    for path in ("/healthz", "/dashboard/", "/dashboard/login"):
        assert _run_guard(guard, path, None)[0] == [path]
    assert _run_guard(guard, "/runs", f"Bearer {TOKEN}".encode())[0] == ["/runs"]


def test_without_a_token_the_guard_lets_everything_through() -> None:
    reached, status, _ = _run_guard(lambda app: BearerGuard(app, token=None), "/runs", None)
    assert reached == ["/runs"] and status is None


def test_the_guard_passes_other_scopes() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def nothing() -> Message:
        return {"type": "lifespan.startup"}

    async def ignore(message: Message) -> None:
        return None

    asyncio.run(BearerGuard(app, token=SECRET)({"type": "lifespan"}, nothing, ignore))
    assert seen == ["lifespan"]


# -- the bearer dependency ------------------------------------------------------------------


def _bearer_app(token: SecretStr | None) -> TestClient:
    app = FastAPI()
    router = APIRouter()

    @router.get("/thing")
    def thing() -> dict[str, str]:
        return {"ok": "yes"}

    app.include_router(router, dependencies=[Security(require_bearer(token))])
    return TestClient(app)


def test_the_bearer_dependency_refuses_as_the_guard_does() -> None:
    client = _bearer_app(SECRET)
    missing = client.get("/thing")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == CHALLENGE
    assert missing.json() == {
        "detail": "a bearer token is required (Authorization: Bearer <token>)"
    }
    for header in ("Bearer nope", f"Basic {TOKEN}", "Bearer"):
        wrong = client.get("/thing", headers={"Authorization": header})
        assert wrong.status_code == 401 and "invalid_token" in wrong.headers["www-authenticate"]
    assert client.get("/thing", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_bearer_dependency_is_documented_and_open_without_a_token() -> None:
    client = _bearer_app(None)
    assert client.get("/thing").json() == {"ok": "yes"}
    document = client.get("/openapi.json").json()
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    assert document["paths"]["/thing"]["get"]["security"] == [{"HTTPBearer": []}]


# -- sessions -------------------------------------------------------------------------------


@pytest.fixture
def records(fake_redis: fakeredis.FakeRedis) -> SessionStore:
    return SessionStore(fake_redis, prefix="t")


def test_a_session_is_kept_in_redis_and_the_cookie_holds_only_its_id(
    records: SessionStore, fake_redis: fakeredis.FakeRedis
) -> None:
    sessions = Sessions(TOKEN, records)
    cookie = sessions.issue()
    session = sessions.check(cookie)
    assert session is not None and TOKEN not in cookie
    assert len(cookie) >= 40 and "." not in cookie  # a random id: no expiry, no signature
    assert session.expires == pytest.approx(time.time() + SESSION_S, abs=5)
    (key,) = fake_redis.keys("t:session:*")
    assert cookie not in key and TOKEN not in str(fake_redis.hgetall(key))
    assert SESSION_S - 10 < fake_redis.ttl(key) <= SESSION_S
    assert sessions.check(cookie, now=session.expires + 1) is None
    assert sessions.check(cookie[:-1] + ("A" if cookie[-1] != "A" else "B")) is None
    for broken in ("", None, "v1", "v1.9999999999.nonce.sig", "x" * 5000):
        assert sessions.check(broken) is None


def test_a_session_of_another_token_is_refused(records: SessionStore) -> None:
    # Changing HEEROS_API_TOKEN ends every session opened with the old one.
    cookie = Sessions("another-token-000000", records).issue()
    assert Sessions(TOKEN, records).check(cookie) is None
    assert Sessions("another-token-000000", records).check(cookie) is not None
    assert Sessions(None, records).check(cookie) is None


def test_revoking_a_session_ends_it_for_every_process(fake_redis: fakeredis.FakeRedis) -> None:
    first = Sessions(TOKEN, SessionStore(fake_redis, prefix="t"))
    second = Sessions(TOKEN, SessionStore(fake_redis, prefix="t"))
    cookie = first.issue()
    assert second.check(cookie) is not None
    second.revoke(cookie)
    assert first.check(cookie) is None and fake_redis.keys("t:session:*") == []
    second.revoke(None)
    second.revoke("unknown")


def test_the_csrf_token_belongs_to_its_session(compared: list[tuple[Any, Any]]) -> None:
    sessions = Sessions(TOKEN)
    one = sessions.check(sessions.issue())
    two = sessions.check(sessions.issue())
    assert one is not None and two is not None
    assert sessions.csrf(one) == sessions.csrf(one) != sessions.csrf(two)
    assert len(sessions.csrf(one)) == 32
    compared.clear()
    assert sessions.csrf_matches(sessions.csrf(one), one)
    assert not sessions.csrf_matches(sessions.csrf(two), one)
    assert not sessions.csrf_matches("", one)
    assert not sessions.csrf_matches("é" * 32, one)  # not ASCII: refused, not an error
    assert len(compared) == 4


def test_without_a_token_nobody_signs_in() -> None:
    sessions = Sessions(None)
    assert not sessions.enabled and not sessions.token_matches("")
    assert sessions.check(Sessions(TOKEN).issue()) is None
    assert Sessions(TOKEN).enabled and Sessions(TOKEN).token_matches(TOKEN)
    assert not Sessions(TOKEN).token_matches(TOKEN + " ")
    assert Sessions(None).log_in("-", "").cookie is None


def test_a_login_counts_checks_and_opens_a_session(records: SessionStore) -> None:
    sessions = Sessions(TOKEN, records)
    wrong = sessions.log_in("10.0.0.1", "nope")
    assert wrong.cookie is None and wrong.retry_after == 0
    right = sessions.log_in("10.0.0.1", TOKEN)
    assert right.cookie is not None and sessions.check(right.cookie) is not None
    for _ in range(LIMITS.per_client):
        assert sessions.log_in("10.0.0.1", "nope").retry_after == 0  # the right one cleared
    held = sessions.log_in("10.0.0.1", TOKEN)  # even the right token waits its turn
    assert held.cookie is None and 0 < held.retry_after <= LIMITS.window_s
    assert sessions.log_in("10.0.0.2", TOKEN).cookie is not None


def _session_app(sessions: Sessions, prefix: str = "") -> TestClient:
    router = APIRouter(route_class=SessionRoute)
    signed_in = Depends(sessions.require)

    @router.get("/login", name=LOGIN_ROUTE)
    def login() -> dict[str, str]:
        return {"page": "login"}

    @router.post("/in")
    def enter(request: Request) -> Response:
        response = Response("in")
        sessions.set_cookie(response, request, sessions.issue())
        return response

    @router.api_route("/out", methods=["GET", "POST"])
    def leave(request: Request) -> Response:
        response = Response("out")
        sessions.sign_out(response, request)
        return response

    @router.api_route("/page", methods=["GET", "POST"])
    def page(session: Annotated[Session, signed_in]) -> dict[str, str]:
        return {"csrf": session.csrf}

    app = FastAPI()
    app.include_router(router, prefix=prefix)
    return TestClient(app)


def test_the_session_dependency_redirects_to_the_login_page() -> None:
    client = _session_app(Sessions(TOKEN))
    answer = client.get("/page?x=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fpage%3Fx%3D1"
    assert answer.content == b""
    posted = client.post("/page", follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["location"] == "/login"
    client.cookies.set(COOKIE, Sessions("another-token-000000").issue())
    assert client.get("/page", follow_redirects=False).status_code == 303


def test_the_session_dependency_hands_the_route_its_session() -> None:
    sessions = Sessions(TOKEN)
    client = _session_app(sessions)
    cookie = sessions.issue()
    client.cookies.set(COOKIE, cookie)
    answer = client.get("/page", follow_redirects=False)
    session = sessions.check(cookie)
    assert answer.status_code == 200 and session is not None
    assert answer.json() == {"csrf": session.csrf}


def test_the_login_redirect_follows_the_mount_prefix() -> None:
    client = _session_app(Sessions(TOKEN), prefix="/dashboard")
    answer = client.get("/dashboard/page", follow_redirects=False)
    assert answer.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fpage"


def test_signing_in_and_out_sets_and_drops_a_strict_cookie(records: SessionStore) -> None:
    client = _session_app(Sessions(TOKEN, records))
    cookie = client.post("/in").headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for part in ("HttpOnly", "SameSite=strict", "Path=/", f"Max-Age={SESSION_S}"):
        assert part in cookie
    assert "Secure" not in cookie and TOKEN not in cookie
    assert client.get("/page", follow_redirects=False).status_code == 200
    dropped = client.post("/out").headers["set-cookie"]
    assert dropped.startswith(f'{COOKIE}=""') and "Max-Age=0" in dropped
    assert client.get("/page", follow_redirects=False).status_code == 303
    secure = TestClient(client.app, base_url="https://testserver")
    assert "Secure" in secure.post("/in").headers["set-cookie"]


def test_logging_out_revokes_the_session_a_copied_cookie_had(records: SessionStore) -> None:
    client = _session_app(Sessions(TOKEN, records))
    client.post("/in")
    copied = TestClient(client.app)
    copied.cookies.set(COOKIE, client.cookies[COOKIE])
    assert copied.get("/page", follow_redirects=False).status_code == 200
    client.post("/out")
    assert copied.get("/page", follow_redirects=False).status_code == 303


# -- the dashboard's login and logout ---------------------------------------------------------


@pytest.fixture
def dashboard_app(store: StatusStore, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    monkeypatch.setattr(dashboard, "LOGIN_DELAY_S", 0.0)
    settings = Settings(broker_url="memory://", api_token=SECRET, key_prefix="t")
    app = FastAPI()
    app.include_router(create_dashboard(settings, store=store, celery_app=create_app(settings)))
    return app


def test_logging_out_of_the_dashboard_revokes_the_session(
    dashboard_app: FastAPI, fake_redis: fakeredis.FakeRedis
) -> None:
    client = TestClient(dashboard_app)
    assert client.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    copied = TestClient(dashboard_app, cookies={COOKIE: client.cookies[COOKIE]})
    assert copied.get("/", follow_redirects=False).status_code == 200
    assert fake_redis.keys("t:session:*")
    assert client.get("/logout", follow_redirects=False).status_code == 303
    assert fake_redis.keys("t:session:*") == []
    assert copied.get("/", follow_redirects=False).status_code == 303


def test_the_dashboard_login_is_throttled_per_client(dashboard_app: FastAPI) -> None:
    client = TestClient(dashboard_app, client=("203.0.113.7", 50000))
    codes = [
        client.post("/login", data={"token": "guess"}, follow_redirects=False).status_code
        for _ in range(20)
    ]
    assert codes == [401] * LIMITS.per_client + [429] * (20 - LIMITS.per_client)
    held = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert held.status_code == 429
    assert 0 < int(held.headers["retry-after"]) <= LIMITS.window_s
    assert "Too many" in held.text
    other = TestClient(dashboard_app, client=("203.0.113.8", 50000))
    assert other.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303


def test_the_dashboard_login_is_throttled_overall(dashboard_app: FastAPI) -> None:
    codes = [
        TestClient(dashboard_app, client=(f"198.51.{n // 4}.{n % 4}", 1))
        .post("/login", data={"token": "guess"}, follow_redirects=False)
        .status_code
        for n in range(LIMITS.overall + 1)
    ]
    assert codes == [401] * LIMITS.overall + [429]


# -- the token's length -----------------------------------------------------------------------


def test_a_short_api_token_is_refused_by_the_settings() -> None:
    for short in ("Zq", "Zq-fifteen-char", " " * 10 + "Zqk" + " " * 10):
        with pytest.raises(ValidationError) as refused:
            Settings(api_token=short)
        message = str(refused.value)
        assert "HEEROS_API_TOKEN" in message and "16" in message
        assert short.strip() not in message  # the value never shows
    assert Settings(api_token="sixteen-chars-ok").api_token is not None
    for unset in ("", "   "):
        assert Settings(api_token=unset).api_token is None


def test_anonymous_metrics_take_no_empty_bearer_for_a_token(store: StatusStore) -> None:
    settings = Settings(broker_url="memory://", api_token=SecretStr(""))
    api = create_api(settings, store=store, config=export_config(), allow_anonymous=True)
    client = TestClient(api)
    for header in ("Bearer ", "Bearer", "bearer   "):
        answer = client.get("/metrics", headers={"Authorization": header})
        assert answer.status_code in (401, 503), header
        assert "heeros_invoices_total" not in answer.text


def test_no_open_redirect_after_login() -> None:
    assert safe_next("/runs/1?x=2") == "/runs/1?x=2"
    for target in ("https://evil.example", "//evil.example", "/\\evil", "", None, "runs"):
        assert safe_next(target) is None
