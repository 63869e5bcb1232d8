"""The benchmarks run: each module imports, and two of them measure at tiny sizes.

A smoke test, not a measurement: the aggregator and the period close run on a
private Redis (and the close through the CLI and the API too) and must print
their figures. The end-to-end benchmarks take minutes; ``python -m bench --quick``
runs them all.
"""

from __future__ import annotations

import importlib
import os

import pytest

from producer.cli.localservices import redis_server_available

pytestmark = pytest.mark.integration

MODULES = (
    "bench.__main__",
    "bench.aggregator",
    "bench.ceiling",
    "bench.close",
    "bench.e2e",
    "bench.fairness",
    "bench.naive_app",
    "bench.peers",
    "bench.report",
)


@pytest.fixture
def private_redis() -> None:
    if not redis_server_available():
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (scripts/ensure-system.sh installs it)")
        pytest.skip("redis-server is not installed")


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    assert importlib.import_module(name) is not None


def test_aggregator_prints_its_figures(
    private_redis: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import aggregator

    aggregator.main(["--quick"])
    out = capsys.readouterr().out
    assert "### 4. Aggregator" in out
    assert "1,000: status, median" in out
    assert " ms |" in out
    assert "command: " in out


def test_close_prints_its_figures(private_redis: None, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import close

    table = close.run((100,), paths=("library", "cli", "api", "stream"))
    print(table.markdown())
    out = capsys.readouterr().out
    assert "### 1. Period close" in out
    for path in (
        "apply_async loop",
        "library (close_period)",
        "CLI (close-period, JSON file)",
        "CLI (close-period, NDJSON file)",
        "API streamed (NDJSON)",
        "API (POST",
        "API process peak RSS (streamed close)",
    ):
        assert f"100: {path}" in out
    assert "≥ 3.00×" in out
    assert all(row.value for row in table.rows)
