"""The API in a process of its own (``heeros-export api``, uvicorn) under hostile bodies:
whatever it accepts or refuses, its memory stays bounded.

Each request's answer is checked, then the process's peak resident memory (VmHWM in
/proc/PID/status), which must stay under 300 MB. The figures are printed::

    .venv/bin/python -m pytest tests/integration/test_hostile_api.py -s
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from producer.cli.localservices import LocalProcess, free_port
from producer.operations.actions import MAX_INVOICES
from producer.operations.samples import sample_invoice
from tests.integration.conftest import Exporter

pytestmark = pytest.mark.integration

TOKEN = "integration-hostile-token-0099"
MOST_RSS_KB = 300 * 1024
MIB = 1024 * 1024


@dataclass
class Api:
    process: LocalProcess
    http: httpx.Client
    exporter: Exporter

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM of the API process, in kB."""
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
        return found

    def post(self, label: str, period: str, body: bytes) -> httpx.Response:
        began = time.monotonic()
        answer = self.http.post(
            f"/periods/{period}/close",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        seconds = time.monotonic() - began
        memory = self.memory()
        print(
            f"HOSTILE-API {label}: {len(body) / MIB:.1f} MiB -> {answer.status_code} "
            f"in {seconds:.1f} s; VmRSS {memory['VmRSS'] / 1024:.0f} MB, "
            f"VmHWM {memory['VmHWM'] / 1024:.0f} MB"
        )
        assert answer.status_code < 500, answer.text[:500]
        assert memory["VmHWM"] < MOST_RSS_KB, (label, memory)
        return answer


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def api(exporter: Exporter) -> Iterator[Api]:
    port = free_port()
    log_path = exporter.logs / "hostile-api.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "producer.cli", "api", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**exporter.env, "HEEROS_API_TOKEN": TOKEN},
            start_new_session=True,
        )
    process = LocalProcess("hostile-api", popen, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _healthy(url):
            assert process.alive() and time.monotonic() < deadline, process.log_tail()
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
            yield Api(process, http, exporter)
    finally:
        process.stop()


def _invoices(count: int, rows: int) -> list[dict[str, Any]]:
    return [
        sample_invoice(number, rows=rows).model_dump(mode="json", round_trip=True)
        for number in range(600001, 600001 + count)
    ]


def _opter_xml(contents: list[bytes]) -> bytes:
    documents = [
        base64.b64encode(b"<Invoice><Number>1</Number><FreeText>%s</FreeText></Invoice>" % c)
        for c in contents
    ]
    return b'{"opter_xml": ["' + b'", "'.join(documents) + b'"]}'


def test_a_million_empty_objects_take_little_memory(api: Api) -> None:
    body = b'{"invoices": [' + b"{}, " * 999_999 + b"{}]}"
    answer = api.post("a million empty objects", "2026-01", body)
    assert answer.status_code == 413
    assert api.exporter.store.period_run("2026-01") is None


def test_the_largest_valid_body_takes_little_memory(api: Api) -> None:
    invoices = _invoices(MAX_INVOICES, rows=14)
    body = json.dumps({"invoices": invoices}).encode()
    assert len(body) > 40 * MIB
    answer = api.post(f"{MAX_INVOICES:,} valid invoices", "2026-02", body)
    assert answer.status_code == 202, answer.text[:500]
    assert answer.json()["queued"] == MAX_INVOICES and answer.json()["failed"] == 0


def test_bodies_built_to_take_memory_take_little(api: Api) -> None:
    values = b"[" + b"1.0," * 299_990 + b"1.0]"
    one = json.dumps(_invoices(1, rows=1)[0]).encode()
    bodies = {
        "an invoice of 300,000 decimals": b'{"invoices": [{"rows": '
        + values
        + b"}, "
        + one
        + b"]}",
        "a string of 60 MiB": b'{"invoices": [' + one + b', "' + b"x" * (60 * MIB) + b'"]}',
        "nesting 30 million deep": b'{"invoices": ['
        + b"[" * (30 * MIB)
        + b"]" * (30 * MIB)
        + b"]}",
        "ten thousand refusals": b'{"invoices": [' + b'{"number": "1"},' * 9_999 + b"{}]}",
        "Opter XML of 400,000 elements, five times": _opter_xml([b"<a/>" * 399_000] * 5),
        "Opter XML of 8 MB of text, five times": _opter_xml([b"x" * (8 * MIB - 2000)] * 5),
    }
    for position, (label, body) in enumerate(bodies.items()):
        assert len(body) < 64 * MIB
        answer = api.post(label, f"2026-1{position}", body)
        assert answer.status_code in (202, 413, 422), answer.text[:300]
