"""The alert rules and Prometheus's configuration: promtool's checks and unit tests, runbooks.

promtool comes from Debian's prometheus package (scripts/ensure-promtool.sh installs
it). Without it these tests skip locally and fail in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
COMPOSE = ROOT / "docker-compose.yml"
BOARD = ROOT / "deploy" / "grafana" / "heeros-export.json"
ANNOTATIONS = ("summary", "description", "runbook_url")


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (scripts/ensure-promtool.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=120, check=False
    )


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in _load(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub's rules) gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_rules_pass_promtool_check(promtool: str) -> None:
    result = _run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_pass_their_unit_tests(promtool: str) -> None:
    result = _run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_config_passes_promtool_check(promtool: str, tmp_path: Path) -> None:
    # promtool insists that the token file exists: point the copy at a stand-in.
    config = _load(CONFIG)
    (api,) = [job for job in config["scrape_configs"] if job["job_name"] == "heeros-api"]
    token_path = api["authorization"]["credentials_file"]
    token = tmp_path / "token"
    token.write_text("stand-in\n", encoding="utf-8")
    text = CONFIG.read_text(encoding="utf-8").replace(token_path, str(token))
    (tmp_path / "prometheus.yml").write_text(text, encoding="utf-8")
    shutil.copy(RULES, tmp_path / RULES.name)
    result = _run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_board_expressions_parse(promtool: str, tmp_path: Path) -> None:
    # Each expression of the dashboard, with Grafana's variables filled in, as a
    # recording rule: promtool parses it as Prometheus would.
    board = json.loads(BOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    assert exprs
    filled = [expr.replace("$__rate_interval", "1m").replace("$export", ".*") for expr in exprs]
    rules = [{"record": f"board:expression_{n}", "expr": expr} for n, expr in enumerate(filled)]
    path = tmp_path / "board.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "board", "rules": rules}]}))
    result = _run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_writes_the_token_where_the_config_reads_it() -> None:
    config = _load(CONFIG)
    (api,) = [job for job in config["scrape_configs"] if job["job_name"] == "heeros-api"]
    assert api["authorization"]["type"] == "Bearer"
    token_path = api["authorization"]["credentials_file"]
    service = _load(COMPOSE)["services"]["prometheus"]
    assert f"> {token_path}" in " ".join(service["command"])
    mounts = {volume.split(":")[1] for volume in service["volumes"]}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= mounts


def test_every_alert_names_a_job_that_is_scraped() -> None:
    jobs = {job["job_name"] for job in _load(CONFIG)["scrape_configs"]}
    for rule in _alerts():
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, f"{rule['alert']} names job {job!r}, not scraped"


def test_every_alert_has_its_annotations_and_a_severity() -> None:
    alerts = _alerts()
    assert len({rule["alert"] for rule in alerts}) == len(alerts)
    for rule in alerts:
        assert set(ANNOTATIONS) <= set(rule["annotations"]), rule["alert"]
        assert all(rule["annotations"][key].strip() for key in ANNOTATIONS), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]


def test_every_runbook_url_leads_to_its_own_section_of_the_operations_guide() -> None:
    headings = re.findall(r"^#{2,4} (.+)$", OPERATIONS.read_text(encoding="utf-8"), re.M)
    anchors = {_slug(heading) for heading in headings}
    for rule in _alerts():
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor == _slug(rule["alert"]), rule["alert"]
        assert anchor in anchors, f"docs/operations.md has no section {rule['alert']}"


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for case in _load(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), "never shown firing"
    assert names - silent == set(), "never shown silent"
