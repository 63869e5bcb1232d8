"""Who may call: the API token as a bearer token, and the dashboard's session cookie.

One comparison decides both, :func:`token_matches`, in constant time:

- **Bearer** (the API and ``/metrics``): ``Authorization: Bearer <HEEROS_API_TOKEN>``.
  The API refuses a request without it in :class:`BearerGuard`, a middleware, so
  before anything reads the body and on every path, unknown ones included; its
  routes also carry :func:`require_bearer` as a dependency, which documents the
  scheme in OpenAPI and keeps them closed should the guard's list of public
  paths ever take one in.
- **Session** (the dashboard): the login form takes the token once and sets a
  cookie holding an expiry, a random nonce and an HMAC of both keyed by the
  token, never the token itself; it is HttpOnly and SameSite=Strict. Forms also
  carry a per-session CSRF token (an HMAC of the nonce). A route that takes
  :meth:`Sessions.require` as a dependency answers a request without a valid
  cookie with a redirect to the login page (its routes need
  :class:`SessionRoute`). With no API token configured, nobody can log in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import HTTPException, Request, Response, Security
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "heeros_session"
SESSION_S = 12 * 3600
"""How long a login lasts."""
LOGIN_ROUTE = "dashboard_login"
"""The name of the login page's route, where a request without a session is sent."""
CHALLENGE = 'Bearer realm="heeros-export"'


# -- the token ------------------------------------------------------------------------------


def token_matches(given: str | bytes, token: SecretStr | str | None) -> bool:
    """Whether ``given`` is the API token, compared in constant time; never without a token."""
    if token is None:
        return False
    expected = token.get_secret_value() if isinstance(token, SecretStr) else token
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
    """A valid login: its nonce ties the CSRF token to it."""

    nonce: str
    expires: int


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
            try:
                return await handle(request)
            except LoginRequired as refused:
                return refused.redirect

        return handle_or_redirect


class Sessions:
    """Issues and checks session cookies and CSRF tokens, keyed by the API token."""

    def __init__(self, token: str | None) -> None:
        self._token = token
        self._key = (
            hmac.new(token.encode(), b"heeros-dashboard-session", hashlib.sha256).digest()
            if token
            else b""
        )

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def token_matches(self, given: str) -> bool:
        return token_matches(given, self._token)

    def issue(self, *, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_S)
        body = f"v1.{expires}.{secrets.token_urlsafe(18)}"
        return f"{body}.{self._sign(body)}"

    def check(self, cookie: str | None, *, now: float | None = None) -> Session | None:
        if not cookie or not self._key:
            return None
        body, _, signature = cookie.rpartition(".")
        version, _, rest = body.partition(".")
        expires, _, nonce = rest.partition(".")
        if version != "v1" or not expires.isdigit() or not nonce:
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return None
        if int(expires) < (now or time.time()):
            return None
        return Session(nonce=nonce, expires=int(expires))

    def csrf(self, session: Session) -> str:
        return self._sign(f"csrf.{session.nonce}")[:32]

    def csrf_matches(self, given: str, session: Session) -> bool:
        return hmac.compare_digest(given.encode(), self.csrf(session).encode())

    def of(self, request: Request) -> Session | None:
        """The request's session, or None."""
        return self.check(request.cookies.get(COOKIE))

    async def require(self, request: Request) -> Session:
        """The session dependency: the request's session, else :class:`LoginRequired`."""
        session = self.of(request)
        if session is None:
            raise LoginRequired(login_redirect(request))
        return session

    def sign_in(self, response: Response, request: Request) -> None:
        """Set a new session's cookie on the response."""
        response.set_cookie(
            COOKIE,
            self.issue(),
            max_age=SESSION_S,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    @staticmethod
    def sign_out(response: Response) -> None:
        """Drop the session's cookie."""
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()


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
    "SESSION_S",
    "BearerGuard",
    "LoginRequired",
    "Session",
    "SessionRoute",
    "Sessions",
    "bearer_matches",
    "bearer_refusal",
    "login_redirect",
    "require_bearer",
    "safe_next",
    "token_matches",
]
