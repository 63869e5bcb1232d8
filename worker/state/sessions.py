"""The dashboard's logins in Redis: its sessions, and the limits on guessing the token.

A session is a random id in the browser's cookie. Redis keeps the session's
record under the SHA-256 of that id, so a copy of Redis's keys opens no session,
and the record expires with the session. Logging out deletes it: a cookie copied
before then opens nothing afterwards. Every API process sees the same sessions.

Login attempts are counted in fixed windows, per client (its address, as the
ASGI server saw it) and over every client, and held back past either limit:
one client guessing is stopped after a few attempts, many clients guessing
together after a few more. An attempt held back is not counted, so one client
hammering away does not lock everyone else out. A right token clears its
client's count. The check and the count are one Lua call, so parallel attempts
are each counted once.

:class:`LocalSessionStore` keeps the same in the process: for tests, and a
single API process that can forget its sessions when it stops.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis

from worker.state.connection import redis_errors
from worker.state.keys import Keys
from worker.state.store import StatusStore

ID_BYTES = 32
"""A session id's randomness: 256 bits, 43 characters in a cookie."""
MAX_ID_CHARS = 128
"""A longer cookie is not a session id; it is refused without asking Redis."""

# KEYS: the client's attempts, everyone's. ARGV: their limits, the window in seconds.
_ATTEMPT = """
local window = tonumber(ARGV[3])
for i = 1, 2 do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= tonumber(ARGV[i]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 0 then
      redis.call('EXPIRE', KEYS[i], window)
      ttl = window
    end
    return math.max(ttl, 1)
  end
end
for i = 1, 2 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], window) end
end
return 0
"""


@dataclass(frozen=True)
class LoginLimits:
    """Login attempts allowed in one window: per client, and over every client."""

    per_client: int = 5
    overall: int = 50
    window_s: int = 60


class SessionRecords(Protocol):
    """Where sessions are kept and login attempts counted."""

    def open(self, fields: Mapping[str, str], *, ttl_s: int) -> str:
        """Keep a new session's ``fields`` for ``ttl_s`` seconds; its new random id."""
        ...

    def read(self, session_id: str) -> dict[str, str] | None:
        """The fields of the session ``session_id``, or None when there is none."""
        ...

    def revoke(self, session_id: str) -> None:
        """End the session ``session_id`` now (nothing happens when there is none)."""
        ...

    def attempt(self, client: str) -> int:
        """Count a login attempt of ``client``: 0 when it may go on, else the seconds to wait."""
        ...

    def clear_attempts(self, client: str) -> None:
        """Forget ``client``'s attempts (it gave the right token)."""
        ...


def new_session_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def digest(session_id: str) -> str:
    """What names a session in Redis: the SHA-256 of its id, in hex."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    """Sessions and login attempts in Redis; every failure of Redis is a TransientError."""

    def __init__(
        self, client: redis.Redis, *, prefix: str = "hx", limits: LoginLimits | None = None
    ) -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self.limits = limits or LoginLimits()
        self._attempt = client.register_script(_ATTEMPT)

    @classmethod
    def for_store(cls, store: StatusStore, *, limits: LoginLimits | None = None) -> SessionStore:
        """Sessions on the status store's Redis, their keys under the store's prefix."""
        return cls(store.redis, prefix=store.keys.prefix, limits=limits)

    def open(self, fields: Mapping[str, str], *, ttl_s: int) -> str:
        session_id = new_session_id()
        key = self.keys.session(digest(session_id))
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=cast(Any, dict(fields)))  # redis-py's Mapping is invariant
        pipe.expire(key, max(1, ttl_s))
        with redis_errors("the session store"):
            pipe.execute()
        return session_id

    def read(self, session_id: str) -> dict[str, str] | None:
        if not session_id or len(session_id) > MAX_ID_CHARS:
            return None
        with redis_errors("the session store"):
            fields = self.redis.hgetall(self.keys.session(digest(session_id)))
        return cast(dict[str, str], fields) or None

    def revoke(self, session_id: str) -> None:
        if not session_id or len(session_id) > MAX_ID_CHARS:
            return
        with redis_errors("the session store"):
            self.redis.delete(self.keys.session(digest(session_id)))

    def attempt(self, client: str) -> int:
        limits = self.limits
        keys = [self.keys.login_attempts(client), self.keys.login_attempts_all]
        args = [limits.per_client, limits.overall, limits.window_s]
        with redis_errors("the session store"):
            return int(cast(int, self._attempt(keys=keys, args=args)))

    def clear_attempts(self, client: str) -> None:
        with redis_errors("the session store"):
            self.redis.delete(self.keys.login_attempts(client))


class LocalSessionStore:
    """Sessions and login attempts in this process only, under the same rules."""

    def __init__(self, *, limits: LoginLimits | None = None) -> None:
        self.limits = limits or LoginLimits()
        self._sessions: dict[str, tuple[float, dict[str, str]]] = {}
        self._attempts: dict[tuple[str, ...], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def open(self, fields: Mapping[str, str], *, ttl_s: int) -> str:
        session_id = new_session_id()
        with self._lock:
            self._sessions[digest(session_id)] = (time.monotonic() + max(1, ttl_s), dict(fields))
        return session_id

    def read(self, session_id: str) -> dict[str, str] | None:
        if not session_id or len(session_id) > MAX_ID_CHARS:
            return None
        with self._lock:
            kept = self._sessions.get(digest(session_id))
            if kept is None or kept[0] <= time.monotonic():
                self._sessions.pop(digest(session_id), None)
                return None
            return dict(kept[1])

    def revoke(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(digest(session_id), None)

    def attempt(self, client: str) -> int:
        limits = self.limits
        now = time.monotonic()
        with self._lock:
            counters = {("client", client): limits.per_client, ("all",): limits.overall}
            for name, limit in counters.items():
                ends, count = self._counter(name, now)
                if count >= limit:
                    return max(1, math.ceil(ends - now))
            for name in counters:
                ends, count = self._counter(name, now)
                self._attempts[name] = (ends, count + 1)
            return 0

    def clear_attempts(self, client: str) -> None:
        with self._lock:
            self._attempts.pop(("client", client), None)

    def _counter(self, name: tuple[str, ...], now: float) -> tuple[float, int]:
        """When the counter's window ends and its count; a new window once it has ended."""
        ends, count = self._attempts.get(name, (0.0, 0))
        if ends <= now:
            return now + self.limits.window_s, 0
        return ends, count


__all__ = [
    "LocalSessionStore",
    "LoginLimits",
    "SessionRecords",
    "SessionStore",
    "digest",
    "new_session_id",
]
