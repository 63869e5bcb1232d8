"""docker-compose.yml's brokers: Redis by default, RabbitMQ with the ``rabbitmq`` profile.

The file is read as YAML, the way Compose reads it before interpolation; where Debian's
``docker-compose`` is installed, it also renders the file with and without the
profile (scripts/check-compose.sh installs it in CI and checks the same things).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from worker.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY_README = ROOT / "deploy" / "README.md"

BROKER_CLIENTS = ("worker", "worker-poll", "api", "flower")
"""The services that talk to Celery's broker: they publish tasks, consume them or watch them."""

SECRETS = {"HEEROS_CLIENT_KEY": "dummy-client-key", "HEEROS_API_TOKEN": "dummy-token-0123456789"}

AMQP_URL = re.compile(r"HEEROS_BROKER_URL=(amqps?://\S+)")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _depends(spec: dict[str, Any]) -> set[str]:
    depends = spec.get("depends_on", [])
    return set(depends if isinstance(depends, list) else depends.keys())


def _documented_urls() -> list[str]:
    """Every RabbitMQ URL docker-compose.yml and deploy/README.md give as HEEROS_BROKER_URL."""
    urls = []
    for path in (COMPOSE, DEPLOY_README):
        text = path.read_text(encoding="utf-8")
        urls += [url.rstrip("`'\")") for url in AMQP_URL.findall(text)]
    return urls


def _compose_urls() -> list[str]:
    """The documented URLs for Compose: their host is a service name, without a dot."""
    return [url for url in _documented_urls() if "." not in (urlsplit(url).hostname or "")]


def test_rabbitmq_runs_only_in_its_profile_pinned_and_health_checked() -> None:
    rabbit = _services()["rabbitmq"]
    assert rabbit["profiles"] == ["rabbitmq"]
    assert re.fullmatch(r"rabbitmq:\d+\.\d+\.\d+-management", rabbit["image"]), rabbit["image"]
    assert rabbit["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    # RabbitMQ keeps its data under rabbit@<host name>: a fixed one keeps the queues
    # when the container is made anew, and the data volume keeps them across restarts.
    assert rabbit["hostname"] == "rabbitmq"
    assert "rabbitmq-data:/var/lib/rabbitmq" in rabbit["volumes"]
    assert "rabbitmq-data" in _compose()["volumes"]
    assert all(str(port).startswith("127.0.0.1:") for port in rabbit.get("ports", []))


def test_no_service_outside_the_profile_names_or_waits_for_rabbitmq() -> None:
    for name, spec in _services().items():
        if "rabbitmq" in spec.get("profiles", []):
            continue
        assert "rabbitmq" not in _depends(spec), name
        assert not re.search(r"amqps?://|rabbitmq", yaml.safe_dump(spec)), name


def test_every_broker_client_is_passed_the_broker_url_and_nothing_else_by_default() -> None:
    services = _services()
    for name in BROKER_CLIENTS:
        environment = services[name]["environment"]
        # Present without a value: Compose passes it on from the shell or .env when it is
        # set there, and leaves it out of the container otherwise.
        assert "HEEROS_BROKER_URL" in environment, name
        assert environment["HEEROS_BROKER_URL"] is None, name
    for name in ("worker", "api"):
        assert _depends(services[name]) == {"redis"}, name
        assert services[name]["environment"]["HEEROS_REDIS_URL"].endswith(":-redis://redis:6379/0}")


def test_the_documented_url_reaches_the_rabbitmq_service() -> None:
    urls = _compose_urls()
    assert urls, "neither docker-compose.yml nor deploy/README.md shows the RabbitMQ URL"
    services = _services()
    rabbit = services["rabbitmq"]
    # The image's own user, unless the service sets another.
    user = rabbit.get("environment", {}).get("RABBITMQ_DEFAULT_USER", "guest")
    password = rabbit.get("environment", {}).get("RABBITMQ_DEFAULT_PASS", "guest")
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme == "amqp", url
        assert parts.hostname in services, f"{url}: no service {parts.hostname}"
        assert "rabbitmq" in services[parts.hostname].get("profiles", []), url
        assert parts.port == 5672, url
        assert (parts.username, parts.password) == (user, password), url
        assert parts.path == "//", f"{url}: RabbitMQ's default virtual host is //"


def test_a_rabbitmq_of_ones_own_is_not_shown_with_the_guest_user() -> None:
    # guest connects only from RabbitMQ's own machine, except in the Docker image.
    others = [url for url in _documented_urls() if url not in _compose_urls()]
    assert others, "deploy/README.md shows no URL for a RabbitMQ outside Compose"
    for url in others:
        assert urlsplit(url).username not in (None, "guest"), url


@pytest.mark.parametrize("broker", [None, "amqp://guest:guest@rabbitmq:5672//"])
def test_the_worker_settings_name_the_broker_compose_gives(
    broker: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment a worker container gets, read by the worker's own settings.
    environment = dict(_services()["worker"]["environment"])
    for name in [name for name in os.environ if name.startswith("HEEROS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HEEROS_REDIS_URL", "redis://redis:6379/0")
    if broker is not None:
        assert "HEEROS_BROKER_URL" in environment
        monkeypatch.setenv("HEEROS_BROKER_URL", broker)
    settings = Settings()
    assert settings.redis_url == "redis://redis:6379/0"  # the status store, either way
    assert settings.broker == (broker or "redis://redis:6379/0")


@pytest.mark.parametrize(
    ("broker", "expected"),
    [(None, "redis://redis:6379/0"), ("amqp://guest:guest@rabbitmq:5672//", None)],
)
def test_flower_watches_the_broker_the_workers_use(
    broker: str | None, expected: str | None, tmp_path: Path
) -> None:
    flower = _services()["flower"]
    shell, flag, line = flower["command"]
    assert (shell, flag) == ("sh", "-c")
    # Compose turns $$ into $; a stand-in celery prints the broker it was given.
    stand_in = tmp_path / "celery"
    stand_in.write_text('#!/bin/sh\nprintf "%s %s" "$CELERY_BROKER_URL" "$*"\n')
    stand_in.chmod(0o755)
    environment = {
        "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
        "CELERY_BROKER_URL": "redis://redis:6379/0",
    }
    if broker is not None:
        environment["HEEROS_BROKER_URL"] = broker
    shown = subprocess.run(
        ["sh", "-c", line.replace("$$", "$")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert shown == f"{expected or broker} flower"


def _render(*arguments: str, broker: str | None, tmp_path: Path) -> dict[str, Any]:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (scripts/check-compose.sh installs it)")
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("HEEROS_", "COMPOSE_"))
    }
    environment.update(SECRETS)
    if broker is not None:
        environment["HEEROS_BROKER_URL"] = broker
    empty = tmp_path / "empty.env"
    empty.write_text("")
    rendered = subprocess.run(
        [compose, "--env-file", str(empty), "-f", str(COMPOSE), *arguments, "config"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    services: dict[str, Any] = yaml.safe_load(rendered.stdout)["services"]
    return services


def test_rendered_without_the_profile_every_client_stays_on_redis(tmp_path: Path) -> None:
    services = _render(
        "--profile", "monitoring", "--profile", "pools", broker=None, tmp_path=tmp_path
    )
    for name in BROKER_CLIENTS:
        assert services[name]["environment"].get("HEEROS_BROKER_URL") in (None, ""), name
    assert services["worker"]["environment"]["HEEROS_REDIS_URL"] == "redis://redis:6379/0"


def test_rendered_with_the_profile_every_client_uses_rabbitmq(tmp_path: Path) -> None:
    (url,) = set(_compose_urls())
    services = _render(
        "--profile", "rabbitmq", "--profile", "monitoring", "--profile", "pools",
        broker=url, tmp_path=tmp_path,
    )  # fmt: skip
    assert "rabbitmq" in services
    for name in BROKER_CLIENTS:
        assert services[name]["environment"]["HEEROS_BROKER_URL"] == url, name
    # The status store stays in Redis.
    assert services["worker"]["environment"]["HEEROS_REDIS_URL"] == "redis://redis:6379/0"
