"""What every Heeros client of a process shares: the TLS context and the login sessions.

Login happens once per process and credential: the session token is cached at
module level, shared by every client in the process, and renewed when a call is
answered 401 (once per call) or when its announced lifetime runs out. A
credential is known here by its base URL, identity and the SHA-256 digest of
its key, never by the key itself; a session's repr leaves its token out.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from worker.cache import built_once
from worker.heeros.wire import LoginSession

CacheKey = tuple[str, str, str]
"""A credential: base URL, client identity and the SHA-256 digest of the client key."""


@built_once
def tls_context() -> ssl.SSLContext:
    """httpx's own TLS context, built once for every client of the process: building
    one reads the certificate authorities (about 20 ms), and a worker holds a client
    per thread and tenant."""
    return httpx.create_ssl_context()


def cache_key(base_url: str, client_identity: str, client_key: str) -> CacheKey:
    """The key a credential's session is cached under; the client key only as its digest."""
    return (base_url, client_identity, hashlib.sha256(client_key.encode("utf-8")).hexdigest())


@dataclass(frozen=True)
class _Session:
    token: str
    expires_at: float | None  # time.monotonic(); None when Heeros gave no lifetime

    def __repr__(self) -> str:
        return f"_Session(expires_at={self.expires_at!r})"

    def usable(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


_sessions: dict[CacheKey, _Session] = {}
_sessions_lock = threading.Lock()
_login_locks: dict[CacheKey, threading.Lock] = {}


def clear_token_cache() -> None:
    """Forget every cached session token, so that the next call logs in again."""
    with _sessions_lock:
        _sessions.clear()
        _login_locks.clear()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would stay locked forever in the child.
    global _sessions_lock, _login_locks
    _sessions_lock = threading.Lock()
    _login_locks = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _expires_at(expires_in: float | None, now: float) -> float | None:
    # Renew a little before Heeros would, so that a call rarely meets a stale token.
    if expires_in is None:
        return None
    return now + max(expires_in - 60.0, expires_in / 2)


def session_token(key: CacheKey, login: Callable[[], LoginSession]) -> str:
    """The cached token of credential ``key``, calling ``login`` when there is none usable.

    Whatever ``login`` raises propagates, and nothing is cached then.
    """
    with _sessions_lock:
        session = _sessions.get(key)
        if session is not None and session.usable(time.monotonic()):
            return session.token
        login_lock = _login_locks.setdefault(key, threading.Lock())
    # One login per credential at a time: threads that waited use its token.
    with login_lock:
        with _sessions_lock:
            session = _sessions.get(key)
        if session is not None and session.usable(time.monotonic()):
            return session.token
        answer = login()
        session = _Session(answer.token, _expires_at(answer.expires_in, time.monotonic()))
        with _sessions_lock:
            _sessions[key] = session
        return session.token


def forget_token(key: CacheKey, token: str) -> None:
    """Drop credential ``key``'s session if its token is still ``token``."""
    # Only the token that failed: another thread may already have a new one.
    with _sessions_lock:
        session = _sessions.get(key)
        if session is not None and session.token == token:
            del _sessions[key]


__all__ = [
    "CacheKey",
    "cache_key",
    "clear_token_cache",
    "forget_token",
    "session_token",
    "tls_context",
]
