"""The Grafana dashboard and its provisioning fit together and with docker-compose.yml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
BOARD = GRAFANA / "heeros-export.json"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _board() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(BOARD.read_text(encoding="utf-8"))
    return board


def _mounts(service: str) -> dict[str, str]:
    """Container path -> host path of a Compose service's bind mounts."""
    volumes = _yaml(ROOT / "docker-compose.yml")["services"][service]["volumes"]
    pairs = [volume.split(":")[:2] for volume in volumes]
    return {inside: host for host, inside in pairs if host.startswith("./")}


def test_every_panel_reads_the_provisioned_datasource() -> None:
    (source,) = _yaml(GRAFANA / "datasource.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    board = _board()
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"], panel["title"]
    for variable in board["templating"]["list"]:
        assert variable["datasource"]["uid"] == source["uid"]


def test_panels_have_ids_of_their_own_and_do_not_overlap() -> None:
    panels = _board()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_board_shows_what_operations_need() -> None:
    exprs = " ".join(target["expr"] for panel in _board()["panels"] for target in panel["targets"])
    for needed in (
        "heeros_runs_in_progress",
        "rate(heeros_invoices_total",
        "histogram_quantile(0.99, sum by (le) (rate(heeros_send_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(heeros_confirmation_seconds_bucket",
        "sum by (code) (rate(heeros_errors_total",
        "heeros_queue_length",
        "flower_worker_online",
    ):
        assert needed in exprs, needed


def test_compose_mounts_the_provisioning_where_grafana_reads_it() -> None:
    mounts = _mounts("grafana")
    (provider,) = _yaml(GRAFANA / "dashboards.yml")["providers"]
    folder = provider["options"]["path"]
    assert mounts[f"{folder}/{BOARD.name}"] == f"./deploy/grafana/{BOARD.name}"
    provisioned = {
        inside.split("/")[-2]: host
        for inside, host in mounts.items()
        if inside.startswith("/etc/grafana/provisioning/")
    }
    assert provisioned["datasources"] == "./deploy/grafana/datasource.yml"
    assert provisioned["dashboards"] == "./deploy/grafana/dashboards.yml"
    home = _yaml(ROOT / "docker-compose.yml")["services"]["grafana"]["environment"]
    assert home["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{folder}/{BOARD.name}"
