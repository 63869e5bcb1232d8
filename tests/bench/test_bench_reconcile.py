"""The reconciliation benchmark runs at a tiny size and prints its figures (a smoke test)."""

from __future__ import annotations

import os

import pytest

from producer.cli.localservices import redis_server_available

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis() -> None:
    if not redis_server_available():
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (scripts/ensure-system.sh installs it)")
        pytest.skip("redis-server is not installed")


def test_reconcile_prints_its_figures(private_redis: None) -> None:
    from bench import reconcile

    table = reconcile.run(reconciled=200, exported=100)
    text = table.markdown()
    assert "### 5. Reconciliation beside an export" in text
    assert "export alone" in text and "beside the reconciliation" in text
    assert "ratio (beside / alone)" in text
    assert "200 of 200" in text
