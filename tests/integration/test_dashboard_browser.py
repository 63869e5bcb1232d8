"""The dashboard in headless Chromium, over real workers, a real Redis and the sandbox.

A person's view: log in, watch a period go from a moving bar to green with its
rate, time left and progress chart, see forty failures with one HTTP_503 as one
group with its exact message, press that group's "Re-queue these 40" and watch
only those go through; pick the runs of one export; then ``/metrics`` must agree
with the run's figures. The run page of the failed run is saved as
``docs/dashboard.png`` for the README.

Needs Debian's ``chromium`` (``scripts/ensure-browser.sh``) and the
``playwright`` Python client, which drives that browser (no browser download).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from producer.cli.localservices import free_port
from producer.http.dashboard import create_dashboard
from producer.http.metrics import create_metrics_router
from producer.operations.runs import Rejected
from producer.operations.samples import sample_invoices
from tests.integration.conftest import Exporter
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.errors import MESSAGE_LOGIN_FAILED, InvoiceError
from worker.state.aggregator import RunState
from worker.state.keys import State, item_id
from worker.state.store import RunRecord

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
TOKEN = "browser-test-token-6604"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
UNAVAILABLE = (
    "It was not possible to send the invoice to Heeros. Error code from Heeros: HTTP_503. "
    "Error message from Heeros: "
)


def _chromium() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def _missing() -> list[str]:
    missing = []
    if _chromium() is None:
        missing.append("chromium (scripts/ensure-browser.sh installs it)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    return missing


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests need {', '.join(missing)}")
        pytest.skip(f"the browser tests need {', '.join(missing)}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def served(exporter: Exporter) -> Iterator[str]:
    """The dashboard (under /dashboard) and /metrics on a free loopback port."""
    settings = Settings(
        redis_url=exporter.redis_url,
        base_url=exporter.sandbox_url,
        export_config=exporter.config_path,
        api_token=TOKEN,
    )
    app = FastAPI()
    app.include_router(
        create_dashboard(settings, celery_app=create_app(settings)), prefix="/dashboard"
    )
    app.include_router(create_metrics_router(settings))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=3,
        )
    )
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


def _log_in(page: Any, base: str) -> None:
    page.goto(f"{base}/dashboard/")
    assert "/dashboard/login" in page.url
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    assert page.inner_text("#login-error") == "That token is not right."
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/")
    assert page.is_visible("table.runs")


def _bar(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """() => {
                const bar = document.getElementById("bar");
                return {state: bar.dataset.state, label: bar.querySelector(".label").textContent,
                        width: parseFloat(bar.querySelector(".fill").style.width),
                        exported: Number(document.querySelector('[data-figure="exported"]')
                                         .textContent)};
            }"""
        )
    )


def _pace(page: Any) -> dict[str, Any]:
    """The rate, the time left (each with whether it shows) and the chart's points."""
    return dict(
        page.evaluate(
            """() => {
                const shown = (el) => el.offsetParent !== null;
                const rate = document.querySelector('[data-pace="rate"]');
                const left = document.querySelector('[data-pace="left"]');
                const chart = document.getElementById("chart");
                const line = document.getElementById("chart-line");
                return {state: document.getElementById("bar").dataset.state,
                        rate: shown(rate) ? rate.textContent : null,
                        left: shown(left) ? left.textContent : null,
                        chart: shown(chart) ? line.getAttribute("points") : null};
            }"""
        )
    )


def _watch_until_finished(
    page: Any, *, timeout: float = 150, paces: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Every distinct look of the bar until it stops moving (and of the pace, if asked)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        look = _bar(page)
        if not seen or look != seen[-1]:
            seen.append(look)
        if paces is not None:
            pace = _pace(page)
            if not paces or pace != paces[-1]:
                paces.append(pace)
        if look["state"] != RunState.RUNNING.value:
            return seen
        time.sleep(0.1)
    pytest.fail(f"the bar kept moving for {timeout} s: {seen[-3:]}")


def _scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    assert httpx.get(f"{base}/metrics", timeout=10).status_code == 401
    answer = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert "integration-key" not in answer.text
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _scrape_settled(
    base: str, expected: dict[tuple[str, tuple[Any, ...]], float], *, timeout: float = 15
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The scraped samples once ``expected`` holds: workers write their counts to Redis
    at most a heartbeat after recording them, so the last ones arrive a moment late."""
    deadline = time.monotonic() + timeout
    while True:
        samples = _scrape(base)
        differ = {
            key: samples.get(key) for key, value in expected.items() if samples.get(key) != value
        }
        if not differ:
            return samples
        if time.monotonic() > deadline:
            pytest.fail(f"metrics still differ after {timeout} s: {differ}, expected {expected}")
        time.sleep(0.25)


API = ("export", "Heeros (API)")


def test_a_period_goes_from_moving_to_green(exporter: Exporter, served: str, page: Any) -> None:
    _log_in(page, served)
    invoices = list(sample_invoices(300))
    started = exporter.close_period(invoices)
    assert started.total == 300

    page.goto(f"{served}/dashboard/")
    row = page.locator(f'tr[data-run="{started.run}"]')
    assert row.locator(".bar").get_attribute("data-state") == "running"
    row.locator("a").first.click()
    page.wait_for_url(re.compile(rf"/dashboard/runs/{started.run}$"))
    first = _bar(page)
    assert first == {
        "state": "running",
        "label": "Exporting: 0 of 300 exported",
        "width": 0.0,
        "exported": 0,
    }

    # a run spread over some seconds, for a rate, a time left and a chart while it runs
    exporter.knobs(latency_ms=40)
    exporter.start_workers(1, env={"HEEROS_CONCURRENCY": "4"})
    paces: list[dict[str, Any]] = []
    seen = _watch_until_finished(page, paces=paces)
    moving = [look for look in seen if look["state"] == "running" and 0 < look["width"] < 100]
    assert moving, f"the bar never showed progress: {seen}"
    running = [pace for pace in paces if pace["state"] == "running"]
    assert any(
        re.fullmatch(r"\d+(\.\d+)? invoices/s", pace["rate"] or "")
        and re.fullmatch(r"\d+ (s|min \d+ s)", pace["left"] or "")
        for pace in running
    ), f"no rate and time left while running: {running}"
    assert any(pace["chart"] for pace in running), f"no chart while running: {running}"
    ended = _pace(page)
    assert (ended["rate"], ended["left"]) == (None, None)  # a finished run has no pace
    *_, end = (ended["chart"] or "").split()
    assert end == "240.0,0.0"  # the chart stays, its line at the top: all done
    widths = [look["width"] for look in seen if look["state"] == "running"]
    assert widths == sorted(widths)
    assert seen[-1] == {
        "state": "complete",
        "label": "Export complete: all 300 invoices exported",
        "width": 100.0,
        "exported": 300,
    }
    assert page.inner_text('[data-figure="in_progress"]') == "0"
    assert page.is_hidden("#requeue")
    page.goto(f"{served}/dashboard/")
    assert row.locator(".bar").get_attribute("data-state") == "complete"

    samples = _scrape_settled(
        served, {("heeros_invoices_total", (API, ("state", "exported"))): 300}
    )
    assert samples[("heeros_send_seconds_count", (API,))] == 300
    assert samples[("heeros_send_seconds_bucket", (API, ("le", "+Inf")))] == 300
    assert samples[("heeros_confirmation_seconds_count", (API,))] == 300
    assert samples[("heeros_runs_in_progress", ())] == 0
    assert samples[("heeros_polls_pending", ())] == 0


def _refused(number: str) -> Rejected:
    error = InvoiceError(f"invoice {number}: due_date: not a date", invoice_number=number)
    return Rejected(number=number, error=error)


def _groups(page: Any) -> list[dict[str, Any]]:
    """The rows of the failures-by-message table."""
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll("table.groups tbody tr")).map(
                (row) => ({key: row.dataset.group,
                           count: row.querySelector("td.count").textContent,
                           message: row.querySelector("td.message").textContent,
                           examples: Array.from(row.querySelectorAll("td.examples a"))
                                          .map((a) => a.textContent),
                           button: row.querySelector("button")
                                   ? row.querySelector("button").textContent : null}))"""
        )
    )


def test_forty_failures_are_one_group_requeued_alone(
    exporter: Exporter, served: str, page: Any
) -> None:
    exporter.env["HEEROS_RETRY_MAX"] = "1"
    exporter.knobs(outage=True)
    invoices = list(sample_invoices(40, first=400001))
    refused = [_refused("400098"), _refused("400099")]
    started = exporter.close_period(invoices, period="2026-12", rejected=refused)
    _log_in(page, served)
    page.goto(f"{served}/dashboard/runs/{started.run}")
    exporter.start_workers(1)
    _watch_until_finished(page)  # watched while it runs: its progress is sampled
    summary = exporter.wait(started.run, timeout=120)
    assert summary.state is RunState.FAILED and summary.counts["failed"] == 42
    record = exporter.store.item(started.run, item_id("400007", 0))
    assert record is not None and record.state is State.FAILED and record.message
    # Heeros down: the login or the send answers 503, one message for all forty
    assert record.message == MESSAGE_LOGIN_FAILED or record.message.startswith(UNAVAILABLE)

    page.goto(f"{served}/dashboard/runs/{started.run}")
    assert _bar(page) == {
        "state": "failed",
        "label": "The invoice export failed: 42 of 42 invoices were not exported (0 exported)",
        "width": 100.0,
        "exported": 0,
    }
    unavailable, at_intake = _groups(page)
    assert (unavailable["count"], unavailable["message"]) == ("40", record.message)
    examples = unavailable["examples"]  # the first five to fail, in order
    assert examples == sorted(set(examples)) and len(examples) == 5
    assert set(examples) <= {i.number for i in invoices}
    assert unavailable["button"] == "Re-queue these 40"
    assert at_intake["count"] == "2" and at_intake["button"] is None  # only the TMS can
    assert at_intake["message"] == (
        "The invoice <invoice> could not be exported: invoice <invoice>: due_date: not a date"
    )
    assert _pace(page)["chart"], "a run watched while it ran keeps its chart"
    page.screenshot(path=str(SCREENSHOT), full_page=False)

    shown = page.locator('tr[data-item="400007/0"]')
    assert not shown.is_visible()  # each invoice is one click away
    page.click("#each summary")
    assert shown.locator("td.message").inner_text() == record.message
    assert shown.locator("td").nth(5).inner_text() == str(record.attempts)
    page.fill("#number", "400007")
    page.click("form[action$='/search'] button")
    page.wait_for_url(re.compile(r"/search\?number=400007$"))
    assert page.locator('tr[data-item="400007/0"] td.message').inner_text() == record.message
    page.go_back()

    exporter.knobs(outage=False)
    page.click(f'tr[data-group="{unavailable["key"]}"] button')
    page.wait_for_url(re.compile(rf"/runs/{started.run}\?requeued=40$"))
    assert page.inner_text("#requeued") == "Re-queued 40 invoices."
    seen = _watch_until_finished(page)
    assert seen[-1] == {
        "state": "failed",
        "label": "The invoice export failed: 2 of 42 invoices were not exported (40 exported)",
        "width": 100.0,
        "exported": 40,
    }
    page.wait_for_function("() => document.querySelectorAll('table.groups tbody tr').length === 1")
    (left,) = _groups(page)
    assert left["key"] == at_intake["key"] and left["count"] == "2"
    received = exporter.received()
    assert sorted(ref for (_, _, ref) in received) == sorted(i.number for i in invoices)
    assert all(entry["stored"] == 1 for entry in received.values())

    samples = _scrape_settled(
        served,
        {
            ("heeros_invoices_total", (API, ("state", "failed"))): 40,
            ("heeros_invoices_total", (API, ("state", "exported"))): 40,
        },
    )
    assert samples[("heeros_send_seconds_count", (API,))] == 40
    assert samples[("heeros_confirmation_seconds_count", (API,))] == 40
    assert samples[("heeros_errors_total", (("code", "HTTP_503"),))] >= 40
    assert samples[("heeros_retries_total", (("kind", "send"),))] >= 40
    assert samples[("heeros_runs_in_progress", ())] == 0


def test_the_runs_of_one_export(exporter: Exporter, served: str, page: Any) -> None:
    store = exporter.store
    for run, exports, created in (
        ("2026-10-0001", ["Heeros (strict)"], 1.0),
        ("2026-10-0002", ["Heeros (API)"], 2.0),
        ("2026-10-0003", ["Heeros (API)", "Heeros (strict)"], 3.0),
    ):
        store.create_run(
            RunRecord(run=run, period="2026-10", total=1, created=created, exports=exports),
            [(item_id("1", 0), "1", 0)],
            {},
        )
    _log_in(page, served)

    def shown() -> list[str]:
        return [row.get_attribute("data-run") for row in page.locator("tr[data-run]").all()]

    assert shown() == ["2026-10-0003", "2026-10-0002", "2026-10-0001"]
    options = page.locator("#export option").all_inner_texts()
    assert options == ["All exports", "Heeros (API)", "Heeros (strict)"]
    page.select_option("#export", "Heeros (strict)")
    page.wait_for_url(re.compile(r"/dashboard/\?export=Heeros\+%28strict%29$"))
    assert shown() == ["2026-10-0003", "2026-10-0001"]
    time.sleep(3.5)  # the rows refresh every 3 s, and keep to the export
    assert shown() == ["2026-10-0003", "2026-10-0001"]
    page.select_option("#export", "")
    page.wait_for_url(re.compile(r"/dashboard/\?export=$"))
    assert len(shown()) == 3
    page.goto(f"{served}/dashboard/runs/2026-10-0002")
    page.click("table.exports a")
    page.wait_for_url(re.compile(r"\?export=Heeros\+%28API%29$"))
    assert shown() == ["2026-10-0003", "2026-10-0002"]
