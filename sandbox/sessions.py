"""Login: the configured users and the tokens handed out, kept in memory with their age."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

DEFAULT_USERS: Mapping[str, str] = {"demo": "demo-key"}
NOMINAL_TTL_S = 3600


class Sessions:
    def __init__(self, users: Mapping[str, str], clock: Callable[[], float]) -> None:
        self._users = dict(users)
        self._clock = clock
        self._tokens: dict[str, float] = {}

    def login(self, identity: str, key: str) -> str | None:
        """A new token when ``key`` is the key of ``identity``, else None."""
        expected = self._users.get(identity)
        if expected is None or not secrets.compare_digest(expected.encode(), key.encode()):
            return None
        token = secrets.token_urlsafe(32)
        self._tokens[token] = self._clock()
        return token

    def valid(self, token: str | None, ttl_s: float | None) -> bool:
        """Whether ``token`` was handed out and, with a ttl, is younger than ``ttl_s``."""
        if token is None:
            return False
        created = self._tokens.get(token)
        if created is None:
            return False
        if ttl_s is not None and self._clock() - created >= ttl_s:
            del self._tokens[token]
            return False
        return True

    def clear(self) -> None:
        self._tokens.clear()


__all__ = ["DEFAULT_USERS", "NOMINAL_TTL_S", "Sessions"]
