"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest

from worker.state.store import StatusStore


@pytest.fixture
def fake_redis() -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis(decode_responses=True)
    yield client
    client.flushall()


@pytest.fixture
def store(fake_redis: fakeredis.FakeRedis) -> StatusStore:
    return StatusStore(fake_redis, prefix="t")
