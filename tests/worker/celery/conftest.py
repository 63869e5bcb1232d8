"""Fixtures of the Celery layer's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.cli.localservices import LocalProcess, redis_server_available, start_redis


@pytest.fixture(scope="module")
def redis_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProcess]:
    """A ``redis-server`` of the module's own, as the broker (and store) of its tests."""
    if not redis_server_available():
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (scripts/ensure-system.sh installs it)")
        pytest.skip("redis-server is not installed")
    folder: Path = tmp_path_factory.mktemp("broker")
    server = start_redis(data_dir=folder, log_dir=folder)
    yield server
    server.stop()
