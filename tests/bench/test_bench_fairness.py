"""The fairness benchmark: its two tenants, and a run at a tiny size (a smoke test)."""

from __future__ import annotations

import os

import pytest

from producer.cli.localservices import redis_server_available


@pytest.fixture
def private_redis() -> None:
    if not redis_server_available():
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (scripts/ensure-system.sh installs it)")
        pytest.skip("redis-server is not installed")


@pytest.mark.integration
def test_fairness_prints_its_figures(private_redis: None) -> None:
    from bench import fairness

    table = fairness.run(
        big=300, tenant_invoices=200, alone_runs=1, head_start_s=0.5, latency_ms=20, timeout=60
    )
    text = table.markdown()
    assert "### 6. Fairness" in text
    assert "5 invoices alone: close → all final" in text
    assert "5 invoices beside 300 − alone" in text
    assert "backlog when the small one was closed" in text
    assert "tenant A, 200 invoices: close → first 10% exported" in text
    assert "second tenant starts" in text
    targets = [row for row in table.rows if row.target]
    assert [row.target for row in targets] == ["≤ 10.0 s", "≤ 10.0 s"]
    assert all(row.verdict for row in targets)


def test_tenant_b_invoices_go_to_tenant_b() -> None:
    from bench import fairness
    from producer.operations.samples import sample_invoices
    from worker.config.exports import parse_export_config

    config = parse_export_config(fairness.CONFIG, environ={"HEEROS_CLIENT_KEY": "key"})
    invoices = list(sample_invoices(8, first=100_001))
    exports_a = {config.exports_for(i.customer.customer_number)[0] for i in invoices}
    moved = fairness.of_tenant_b(invoices)
    exports_b = {config.exports_for(i.customer.customer_number)[0] for i in moved}
    assert {e.name for e in exports_a} == {fairness.TENANT_A}
    assert {e.name for e in exports_b} == {fairness.TENANT_B}
    assert {(e.customer_code, e.office_code) for e in exports_a}.isdisjoint(
        (e.customer_code, e.office_code) for e in exports_b
    )
    assert [i.number for i in moved] == [i.number for i in invoices]
