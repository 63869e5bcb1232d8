"""``heeros-export api`` behind a TLS-terminating proxy: a real uvicorn process and a real Redis.

The proxy is played by the test: it connects from 127.0.0.1, the one address trusted
with ``--forwarded-allow-ips``, and sends ``X-Forwarded-Proto`` and ``X-Forwarded-For``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from producer.cli.localservices import LocalProcess, free_port
from tests.integration.conftest import CONFIG

pytestmark = pytest.mark.integration

TOKEN = "integration-access-token-7720"


@dataclass
class Api:
    url: str
    redis: redis.Redis

    def login(self, token: str, **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/dashboard/login", data={"token": token}, headers=headers, timeout=30
        )


@pytest.fixture
def api(redis_server: LocalProcess, tmp_path: Path) -> Iterator[Api]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    config = tmp_path / "exports.toml"
    config.write_text(CONFIG, encoding="utf-8")
    port = free_port()
    env = {
        **os.environ,
        "HEEROS_REDIS_URL": redis_server.url,
        "HEEROS_EXPORT_CONFIG": str(config),
        "HEEROS_API_TOKEN": TOKEN,
    }
    argv = [sys.executable, "-m", "producer.cli", "api", "--port", str(port)]
    argv += ["--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield Api(url, client)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_behind_a_tls_proxy_the_session_cookie_is_secure(api: Api) -> None:
    plain = api.login(TOKEN)
    assert plain.status_code == 303
    assert "Secure" not in plain.headers["set-cookie"]
    proxied = api.login(TOKEN, **{"X-Forwarded-Proto": "https"})
    assert proxied.status_code == 303
    cookie = proxied.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and TOKEN not in cookie


def test_logout_revokes_the_session_in_redis(api: Api) -> None:
    session = api.login(TOKEN).cookies["heeros_session"]
    assert api.redis.keys("hx:session:*")
    cookies = {"heeros_session": session}
    page = httpx.get(f"{api.url}/dashboard/", cookies=cookies, timeout=30)
    assert page.status_code == 200
    httpx.post(f"{api.url}/dashboard/logout", cookies=cookies, timeout=30)
    assert api.redis.keys("hx:session:*") == []
    again = httpx.get(f"{api.url}/dashboard/", cookies=cookies, timeout=30)
    assert again.status_code == 303 and "/dashboard/login" in again.headers["location"]


def test_parallel_wrong_logins_are_held_back_per_client(api: Api) -> None:
    guesser = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda n: api.login(f"guess-{n}", **guesser), range(20)))
    codes = sorted(answer.status_code for answer in answers)
    assert codes == [401] * 5 + [429] * 15
    for answer in answers:
        if answer.status_code == 429:
            assert 0 < int(answer.headers["retry-after"]) <= 60
    assert api.login(TOKEN, **guesser).status_code == 429
    # The client is the address the proxy names: another one logs in.
    other = api.login(TOKEN, **{"X-Forwarded-For": "203.0.113.8"})
    assert other.status_code == 303
    assert api.redis.get("hx:login:client:203.0.113.7") == "5"
