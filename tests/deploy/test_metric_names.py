"""Every metric the alert rules and the Grafana board ask for is one that GET /metrics serves.

The exposition comes from the real route over fakeredis, with every family filled
in, so a renamed metric or label breaks this test before it silences an alert.
Names are compared as sample names (``heeros_send_seconds_bucket``, not
``heeros_send_seconds``), so a suffix is accepted only on a family that has it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from producer.http.metrics import create_metrics_router
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.state.keys import State, item_id
from worker.state.metrics import Metrics
from worker.state.store import RunRecord, StatusStore
from worker.state.windows import Windows

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
BOARD = ROOT / "deploy" / "grafana" / "heeros-export.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
TOKEN = "names-token-0001"

SCRAPE_SERIES = frozenset({"up"})
"""What Prometheus itself records for every scrape (alerts.yml: HeerosRedisUnreachable)."""
FLOWER_SERIES = frozenset({"flower_worker_online"})
"""What the board reads from Flower (job ``flower``): /metrics has no worker count."""
TARGET_LABELS = frozenset({"job", "instance"})

KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan", "atan2"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")
_SELECTOR = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
_NAME = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions and keywords left out)."""
    text = _VARIABLE.sub(" ", expr)
    text = _STRING.sub('""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    return {name for name in _NAME.findall(text) if name.lower() not in KEYWORDS}


def matched_labels(expr: str) -> set[tuple[str, str]]:
    """``(metric, label)`` for every label a selector of the expression matches on."""
    text = _VARIABLE.sub("x", expr)
    return {
        (name, label)
        for name, matchers in _SELECTOR.findall(text)
        for label in _MATCHER.findall(_STRING.sub('""', matchers))
    }


def grouping_labels(expr: str) -> set[str]:
    """The labels named in ``by``, ``without``, ``on`` and ``ignoring`` clauses."""
    return {
        label.strip()
        for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr)
        for label in clause.split(",")
        if label.strip()
    }


def test_the_name_reader_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, export) (rate(heeros_send_seconds_bucket{le!="",'
        'export=~"$export"}[$__rate_interval] offset 1h))) > 2 and on () '
        'max without (instance) (up{job="a"}) unless vector(0) or foo:bar_total * 1e3'
    )
    assert metric_names(expr) == {"heeros_send_seconds_bucket", "up", "foo:bar_total"}
    assert matched_labels(expr) == {
        ("heeros_send_seconds_bucket", "le"),
        ("heeros_send_seconds_bucket", "export"),
        ("up", "job"),
    }
    assert grouping_labels(expr) == {"le", "export", "instance"}


@pytest.fixture(scope="module")
def exposition() -> Iterator[dict[str, set[str]]]:
    """Each sample name GET /metrics serves, with its labels; every family filled in."""
    client = fakeredis.FakeRedis(decode_responses=True)
    store = StatusStore(client, prefix="t")
    metrics = Metrics(client, prefix="t")
    for state in ("exported", "failed", "incomplete", "unconfirmed"):
        metrics.count_final("Heeros (API)", state)
    metrics.observe_send("Heeros (API)", 0.2)
    metrics.observe_confirmation("Heeros (API)", 4.0)
    metrics.count_error("HTTP_503")
    metrics.count_retry("send")
    items = [(item_id("1000", 0), "1000", 0), (item_id("1001", 0), "1001", 0)]
    run = RunRecord(run="R", period="2026-11", total=2, created=time.time(), exports=["A"])
    store.create_run(run, items, {})
    store.transition("R", items[0][0], State.EXPORTED, export_index=0)
    Windows.for_store(store).push("R", {"29010-00079": [items[1][0]]})

    settings = Settings(broker_url="memory://", api_token=TOKEN, key_prefix="t")
    app = FastAPI()
    app.include_router(create_metrics_router(settings, store, app=create_app(settings)))
    answer = TestClient(app).get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    yield samples
    client.flushall()


def _rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {
        rule.get("alert") or rule["record"]: rule["expr"]
        for group in groups
        for rule in group["rules"]
    }


def _board_expressions() -> dict[str, str]:
    board = json.loads(BOARD.read_text(encoding="utf-8"))
    found: dict[str, str] = {}

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            title = node.get("title", where)
            if isinstance(node.get("expr"), str):
                found[f"{title} {node.get('refId', '')}".strip()] = node["expr"]
            for value in node.values():
                walk(value, title)
        elif isinstance(node, list):
            for value in node:
                walk(value, where)

    walk(board["panels"], "panels")
    for variable in board["templating"]["list"]:
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        # label_values(metric, label): the metric is the first argument
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", text)
        assert match, f"variable {variable['name']}: {text}"
        found[f"variable {variable['name']}"] = f"{match[1]}{{{match[2]}!=''}}"
    return found


def _unknown(
    expressions: dict[str, str], exposed: dict[str, set[str]], allowed: frozenset[str]
) -> list[str]:
    problems = []
    for where, expr in expressions.items():
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        problems += [f"{where}: {name}" for name in names - exposed.keys() - allowed]
        for name, label in matched_labels(expr):
            if name in exposed and label not in exposed[name] | TARGET_LABELS:
                problems.append(f"{where}: {name} has no label {label}")
        labels = TARGET_LABELS.union(*(exposed.get(name, set()) for name in names))
        if names <= exposed.keys():
            problems += [f"{where}: no label {label}" for label in grouping_labels(expr) - labels]
    return problems


def test_the_rules_ask_only_for_what_metrics_serves(exposition: dict[str, set[str]]) -> None:
    assert _unknown(_rule_expressions(), exposition, SCRAPE_SERIES) == []


def test_the_board_asks_only_for_what_metrics_serves(exposition: dict[str, set[str]]) -> None:
    assert _unknown(_board_expressions(), exposition, FLOWER_SERIES) == []


def test_the_board_reads_flower_only_where_it_is_scraped() -> None:
    jobs = {
        job["job_name"]
        for job in yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))["scrape_configs"]
    }
    used = set().union(*map(metric_names, _board_expressions().values()))
    if used & FLOWER_SERIES:
        assert "flower" in jobs


def test_quantiles_read_histogram_buckets(exposition: dict[str, set[str]]) -> None:
    quantiles = [
        expr for expr in _board_expressions().values() if expr.startswith("histogram_quantile(")
    ]
    assert len(quantiles) >= 6
    for expr in quantiles:
        (name,) = metric_names(expr)
        assert name.endswith("_bucket") and "le" in exposition[name], expr
        assert re.search(r"\bby \((?:[\w, ]*\b)?le\b", expr), f"{expr}: aggregate keeping le"
