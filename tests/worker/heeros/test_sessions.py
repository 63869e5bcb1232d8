"""The login sessions a process's Heeros clients share."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from worker.errors import LoginError
from worker.heeros.sessions import (
    cache_key,
    clear_token_cache,
    forget_token,
    session_token,
    tls_context,
)
from worker.heeros.wire import LoginSession

KEY = cache_key("https://heeros.test", "opter-user", "Zq7-KEY-7781-distinctive")


class Logins:
    """A login that hands out a new token each time it is called."""

    def __init__(self, expires_in: float | None = 3600.0, delay: float = 0.0) -> None:
        self.count = 0
        self.expires_in = expires_in
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> LoginSession:
        time.sleep(self.delay)
        with self._lock:
            self.count += 1
            return LoginSession(token=f"tok-{self.count}", expires_in=self.expires_in)


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    clear_token_cache()
    yield
    clear_token_cache()


def test_a_credential_logs_in_once() -> None:
    login = Logins()
    assert session_token(KEY, login) == "tok-1"
    assert session_token(KEY, login) == "tok-1"
    assert login.count == 1


def test_a_session_without_a_lifetime_is_kept() -> None:
    login = Logins(expires_in=None)
    session_token(KEY, login)
    assert session_token(KEY, login) == "tok-1"


def test_each_credential_has_its_own_session() -> None:
    login = Logins()
    other = cache_key("https://heeros.test", "opter-user", "another key")
    assert session_token(KEY, login) == "tok-1"
    assert session_token(other, login) == "tok-2"
    assert session_token(KEY, login) == "tok-1"


def test_the_cache_key_holds_a_digest_of_the_client_key_only() -> None:
    assert "Zq7-KEY-7781-distinctive" not in repr(KEY)
    assert KEY[:2] == ("https://heeros.test", "opter-user")


def test_forgetting_a_token_logs_in_again() -> None:
    login = Logins()
    forget_token(KEY, session_token(KEY, login))
    assert session_token(KEY, login) == "tok-2"


def test_forgetting_an_old_token_keeps_the_new_one() -> None:
    login = Logins()
    old = session_token(KEY, login)
    forget_token(KEY, old)
    assert session_token(KEY, login) == "tok-2"
    forget_token(KEY, old)
    assert session_token(KEY, login) == "tok-2"


def test_clearing_the_cache_logs_in_again() -> None:
    login = Logins()
    session_token(KEY, login)
    clear_token_cache()
    assert session_token(KEY, login) == "tok-2"


def test_a_failed_login_caches_nothing() -> None:
    def refused() -> LoginSession:
        raise LoginError("no")

    with pytest.raises(LoginError):
        session_token(KEY, refused)
    assert session_token(KEY, Logins()) == "tok-1"


def test_threads_that_wait_for_a_login_use_its_token() -> None:
    login = Logins(delay=0.05)
    tokens: list[str] = []
    threads = [
        threading.Thread(target=lambda: tokens.append(session_token(KEY, login))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tokens == ["tok-1"] * 8
    assert login.count == 1


def test_the_tls_context_is_built_once() -> None:
    assert tls_context() is tls_context()
