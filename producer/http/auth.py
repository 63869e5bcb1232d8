"""Who may call: the API token as a bearer token, and the dashboard's session cookie.

One comparison decides both, :func:`token_matches`, in constant time; an empty
or blank token matches nothing, not even an empty bearer:

- **Bearer** (the API and ``/metrics``): ``Authorization: Bearer <HEEROS_API_TOKEN>``.
  The API refuses a request without it in :class:`BearerGuard`, a middleware, so
  before anything reads the body and on every path, unknown ones included; its
  routes also carry :func:`require_bearer` as a dependency, which documents the
  scheme in OpenAPI and keeps them closed should the guard's list of public
  paths ever take one in.
- **Session** (the dashboard): the login form takes the token once and opens a
  session kept server-side (:mod:`worker.state.sessions`, in Redis for every API
  process); the cookie holds only the session's random id. It is HttpOnly,
  SameSite=Strict, and Secure when the request came over TLS, directly or
  through a trusted proxy (``heeros-export api --proxy-headers``). Logging out
  deletes the session, so a copied cookie stops working too. Forms carry the
  session's CSRF token. Login attempts are limited per client and overall
  (:class:`~worker.state.sessions.LoginLimits`); one held back is answered 429
  with ``Retry-After``. A route that takes :meth:`Sessions.require` as a
  dependency answers a request without a valid session with a redirect to the
  login page (its routes need :class:`SessionRoute`). With no API token
  configured, nobody can log in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from worker.documents.names import is_run, shown
from worker.state.sessions import LocalSessionStore, SessionRecords

COOKIE = "heeros_session"
SESSION_S = 12 * 3600
"""How long a login lasts."""
LOGIN_ROUTE = "dashboard_login"
"""The name of the login page's route, where a request without a session is sent."""
CHALLENGE = 'Bearer realm="heeros-export"'
MAX_CLIENT_CHARS = 64
"""A client's address as the login limits name it, cut to this length."""


# -- the token ------------------------------------------------------------------------------


def token_matches(given: str | bytes, token: SecretStr | str | None) -> bool:
    """Whether ``given`` is the API token, compared in constant time; never without a token.

    A blank token is no token: nothing matches it, an empty ``given`` least of all.
    """
    if token is None:
        return False
    expected = token.get_secret_value() if isinstance(token, SecretStr) else token
    if not expected.strip():
        return False
    raw = given.encode() if isinstance(given, str) else given
    return hmac.compare_digest(raw, expected.encode())


def bearer_matches(authorization: str | bytes | None, token: SecretStr | str | None) -> bool:
    """Whether an ``Authorization`` header's value is ``Bearer <token>``."""
    if authorization is None:
        return False
    if isinstance(authorization, str):
        try:
            # The ASGI server decoded the header as Latin-1: compare the bytes that came.
            authorization = authorization.encode("latin-1")
        except UnicodeEncodeError:
            return False
    scheme, _, given = authorization.partition(b" ")
    return scheme.lower() == b"bearer" and token_matches(given.strip(), token)


def bearer_refusal(authorization: str | bytes | None, token: SecretStr) -> HTTPException | None:
    """The 401 for a request without the bearer token, or None when it carries it."""
    if bearer_matches(authorization, token):
        return None
    if authorization is None:
        detail = "a bearer token is required (Authorization: Bearer <token>)"
        challenge = CHALLENGE
    else:
        detail = "the bearer token is not valid"
        challenge = f'{CHALLENGE}, error="invalid_token"'
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


class BearerGuard:
    """Answers 401 to a request without the bearer token, before the app sees it.

    ``public`` paths, and paths under ``own_auth`` (which check access
    themselves), pass; so does everything when no token is set (an open API).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: SecretStr | None,
        public: Collection[str] = (),
        own_auth: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.token = token
        self.public = public
        self.own_auth = own_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        guarded = path not in self.public and not path.startswith(self.own_auth)
        if scope["type"] == "http" and self.token is not None and guarded:
            refusal = bearer_refusal(dict(scope["headers"]).get(b"authorization"), self.token)
            if refusal is not None:
                answer = JSONResponse({"detail": refusal.detail}, 401, headers=refusal.headers)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


_bearer_scheme = HTTPBearer(auto_error=False)


def require_bearer(token: SecretStr | None) -> Callable[..., Awaitable[None]]:
    """The bearer check as a route dependency: ``Security(require_bearer(token))``.

    With no token (an API opened with ``allow_anonymous``) every request passes.
    """

    async def bearer(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)],
    ) -> None:
        if token is None:
            return
        refusal = bearer_refusal(request.headers.get("authorization"), token)
        if refusal is not None:
            raise refusal

    return bearer


# -- sessions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """A valid login: its CSRF token goes into the dashboard's forms."""

    id: str = field(repr=False)
    csrf: str = field(repr=False)
    expires: int


@dataclass(frozen=True)
class Login:
    """What a login attempt came to: a new session's cookie, a refusal, or a wait."""

    cookie: str | None = field(default=None, repr=False)
    retry_after: int = 0
    """Seconds until this client may try again; 0 when it was not held back."""


class LoginRequired(Exception):
    """Raised when a dashboard route is asked for without a valid session."""

    def __init__(self, redirect: Response) -> None:
        super().__init__("a session is required")
        self.redirect = redirect


class SessionRoute(APIRoute):
    """A route whose :meth:`Sessions.require` dependency may answer with the login redirect.

    A router cannot register exception handlers, so its routes answer for themselves.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_or_redirect(request: Request) -> Response:
            run = request.path_params.get("run")
            if isinstance(run, str) and not is_run(run):
                # No run can have such an id: the store would refuse to build its keys.
                return PlainTextResponse(f"no run {shown(run)}", status_code=404)
            try:
                return await handle(request)
            except LoginRequired as refused:
                return refused.redirect

        return handle_or_redirect


class Sessions:
    """Opens, checks and ends the dashboard's sessions, kept in ``records``.

    The API passes the status store's Redis (:class:`~worker.state.sessions.SessionStore`);
    without ``records`` sessions live in this process only. Each session carries a
    mark of the token it was opened with, so changing the token ends every session.
    Its methods but :meth:`csrf` and :meth:`set_cookie` ask the records: from async
    code, call them in a thread.
    """

    def __init__(self, token: str | None, records: SessionRecords | None = None) -> None:
        self._token = token
        self._records: SessionRecords = records if records is not None else LocalSessionStore()
        self._mark = (
            hmac.new(token.encode(), b"heeros-dashboard-session", hashlib.sha256).hexdigest()[:32]
            if token
            else ""
        )

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def token_matches(self, given: str) -> bool:
        return token_matches(given, self._token)

    def issue(self, *, now: float | None = None) -> str:
        """Open a session; its cookie's value."""
        expires = int((now or time.time()) + SESSION_S)
        fields = {"token": self._mark, "csrf": secrets.token_urlsafe(24), "expires": str(expires)}
        return self._records.open(fields, ttl_s=expires - int(time.time()))

    def check(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        """The session a cookie names, or None: unknown, ended, expired, or of another token."""
        if not cookie or not self._mark:
            return None
        record = self._records.read(cookie)
        if record is None:
            return None
        mark, csrf, expires = record.get("token", ""), record.get("csrf"), record.get("expires")
        if not hmac.compare_digest(mark.encode(), self._mark.encode()):
            return None
        if not csrf or not expires or not expires.isdigit():
            return None
        if int(expires) < (now or time.time()):
            return None
        return Session(id=cookie, csrf=csrf, expires=int(expires))

    def revoke(self, cookie: str | None) -> None:
        """End the session a cookie names, for every copy of the cookie."""
        if cookie:
            self._records.revoke(cookie)

    def log_in(self, client: str, given: str) -> Login:
        """Count ``client``'s attempt, then check ``given`` and open a session when it is right.

        An attempt past the limits is answered with the wait, whatever token it gave.
        """
        wait = self._records.attempt(client[:MAX_CLIENT_CHARS])
        if wait:
            return Login(retry_after=wait)
        if not self.token_matches(given):
            return Login()
        self._records.clear_attempts(client[:MAX_CLIENT_CHARS])
        return Login(cookie=self.issue())

    @staticmethod
    def csrf(session: Session) -> str:
        return session.csrf

    @staticmethod
    def csrf_matches(given: str, session: Session) -> bool:
        return hmac.compare_digest(given.encode(), session.csrf.encode())

    def of(self, request: Request) -> Session | None:
        """The request's session, or None."""
        return self.check(request.cookies.get(COOKIE))

    def require(self, request: Request) -> Session:
        """The session dependency: the request's session, else :class:`LoginRequired`.

        A plain function, so FastAPI runs it in a thread while it asks Redis.
        """
        session = self.of(request)
        if session is None:
            raise LoginRequired(login_redirect(request))
        return session

    @staticmethod
    def set_cookie(response: Response, request: Request, cookie: str) -> None:
        """Set a session's cookie; Secure when the request came over TLS (or a trusted proxy)."""
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=SESSION_S,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def sign_out(self, response: Response, request: Request) -> None:
        """End the request's session and drop its cookie."""
        self.revoke(request.cookies.get(COOKIE))
        response.delete_cookie(
            COOKIE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


def client_address(request: Request) -> str:
    """The client's address as the ASGI server saw it (after trusted proxy headers)."""
    return request.client.host if request.client else "-"


def login_redirect(request: Request) -> RedirectResponse:
    """To the login page, coming back to this page afterwards (a form starts from the runs)."""
    login = request.url_for(LOGIN_ROUTE).path
    if request.method != "GET":
        return RedirectResponse(login, status_code=303)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{login}?{urlencode({'next': target})}", status_code=303)


def safe_next(target: str | None) -> str | None:
    """A local path to go back to after the login, or None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


__all__ = [
    "CHALLENGE",
    "COOKIE",
    "LOGIN_ROUTE",
    "MAX_CLIENT_CHARS",
    "SESSION_S",
    "BearerGuard",
    "Login",
    "LoginRequired",
    "Session",
    "SessionRoute",
    "Sessions",
    "bearer_matches",
    "bearer_refusal",
    "client_address",
    "login_redirect",
    "require_bearer",
    "safe_next",
    "token_matches",
]
