"""Bad input in a period of good invoices: each bad one fails alone, with its reason.

One period is read from a folder of Opter XML files, as ``close-period
--invoices FOLDER`` reads it, and exported by a real worker: twenty good
invoices and, beside them, one invoice for each way input goes wrong (malformed
XML, external entities, a billion laughs, 50,000 rows, bytes that are not
UTF-8, missing fields, absurd numbers, a transform that reaches for a file and
the network). Each test checks one of them: its state and message, and that
every good invoice of the same run was exported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from lxml import etree

from producer.cli.localservices import LocalProcess, sandbox_received, start_worker
from producer.operations.intake import Intake, read_folder
from producer.operations.runs import start_run
from producer.operations.samples import sample_invoice, sample_invoices
from tests.integration.conftest import CONFIG, FAST, KEY
from worker.celery.app import create_app
from worker.config import load_export_config
from worker.config.settings import Settings
from worker.documents.invoice import MAX_ROWS, Customer, Invoice
from worker.documents.opterxml import serialize_invoice
from worker.state.aggregator import RunSummary, summarize
from worker.state.keys import State, item_id
from worker.state.store import ItemRecord, StatusStore, connect

pytestmark = pytest.mark.integration

GOOD = 20
TENANT = ("29010", "00079")
CUSTOM_TENANT = ("29010", "00081")

# The numbers of the bad invoices whose number can be read; the others are named
# after their file.
HUGE = "300002"
MISSING = "300004"
ABSURD = "300005"
INEXACT = "300009"
CUSTOM = "300007"
AT_LIMIT = "300008"

STEALING_XSL = """\
<?xml version="1.0" encoding="UTF-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:import href="{shipped}"/>
  <xsl:template match="/">
    <xsl:variable name="passwd" select="document('file:///etc/passwd')"/>
    <xsl:variable name="remote" select="document('http://127.0.0.1:9/')"/>
    <xsl:if test="count($passwd) + count($remote) = 0"><xsl:apply-imports/></xsl:if>
  </xsl:template>
</xsl:stylesheet>
"""

CUSTOM_EXPORT = """\
[[exports]]
name = "Heeros (custom XSLT)"
type = "XmlSerializer"
encoding = "UTF-8"
customer_code = "00081"
office_code = "29010"
start_text = "MoveOnlyToLedger=true"
one_file_per_invoice = true
transform = "{transform}"
[exports.file_transfer]
method = "Heeros API"
client_identity = "tester"
client_key_env = "HEEROS_CLIENT_KEY"

[[groups]]
name = "Custom"
exports = ["Heeros (custom XSLT)"]

"""

CUSTOM_CUSTOMER = Customer(
    customer_number="9003",
    name="Oma Muunnos Oy",
    business_id="2617416-4",
    vat_number="FI26174164",
    address={"street": "Teollisuustie 12", "postal_code": "33100", "city": "Tampere"},
)


def _config(transform: Path) -> str:
    """The harness's configuration, with an export of its own transform for customer 9003."""
    head, customers = CONFIG.split("[customers]\n")
    export = CUSTOM_EXPORT.format(transform=transform.as_posix())
    return f'{head}{export}[customers]\n{customers}"9003" = "Custom"\n'


def _with(invoice: Invoice, **changes: Any) -> Invoice:
    """A copy of ``invoice`` with fields changed and *not* validated (bad on purpose)."""
    fields = {name: getattr(invoice, name) for name in Invoice.model_fields}
    return Invoice.model_construct(**{**fields, **changes})


def _without_elements(document: bytes, *tags: str) -> bytes:
    root = etree.fromstring(document)
    for tag in tags:
        for element in root.findall(tag):
            root.remove(element)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _write_folder(folder: Path) -> list[Invoice]:
    """The period's files; returns the good invoices."""
    good = list(sample_invoices(GOOD))
    for invoice in good:
        (folder / f"{invoice.number}.xml").write_bytes(serialize_invoice(invoice))

    (folder / "bad-malformed.xml").write_bytes(
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice>\n  <Number>300001</Number>\n'
        b"  <Period>2026-11\n</Invoice>\n"
    )
    (folder / "bad-xxe.xml").write_bytes(
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b"<Invoice><Number>&xxe;</Number></Invoice>\n"
    )
    (folder / "bad-xxe-utf16.xml").write_bytes(
        (
            '<?xml version="1.0" encoding="UTF-16"?>\n'
            '<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/x">]>\n'
            "<Invoice><Number>&xxe;</Number></Invoice>\n"
        ).encode("utf-16")
    )
    lols = "".join(
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    )  # 10**9 "lol" once expanded
    (folder / "bad-laughs.xml").write_bytes(
        f'<?xml version="1.0"?>\n<!DOCTYPE Invoice [<!ENTITY lol0 "lol">{lols}]>\n'
        "<Invoice><Number>&lol9;</Number></Invoice>\n".encode()
    )

    template = sample_invoice(int(HUGE), rows=1)
    huge = _with(template, rows=[template.rows[0]] * 50_000)
    (folder / f"{HUGE}.xml").write_bytes(serialize_invoice(huge))

    latin = serialize_invoice(sample_invoice(300003), encoding="ISO-8859-15")
    (folder / "bad-latin1.xml").write_bytes(latin.replace(b"ISO-8859-15", b"UTF-8", 1))

    (folder / f"{MISSING}.xml").write_bytes(
        _without_elements(serialize_invoice(sample_invoice(int(MISSING))), "Reference", "DueDate")
    )

    absurd = sample_invoice(int(ABSURD), rows=1)
    row = absurd.rows[0].model_copy(update={"unit_price": Decimal("1000000000000000")})
    (folder / f"{ABSURD}.xml").write_bytes(serialize_invoice(_with(absurd, rows=[row])))

    # Each figure within the model's bounds, the totals not: 1.5 * 10**14 euros.
    inexact = sample_invoice(int(INEXACT), rows=1)
    row = inexact.rows[0].model_copy(
        update={
            "quantity": Decimal("123457"),
            "unit_price": Decimal("987654321.1234"),
            "vat_rate": Decimal("24"),
        }
    )
    (folder / f"{INEXACT}.xml").write_bytes(serialize_invoice(_with(inexact, rows=[row])))

    custom = sample_invoice(int(CUSTOM)).model_copy(update={"customer": CUSTOM_CUSTOMER})
    (folder / f"{CUSTOM}.xml").write_bytes(serialize_invoice(custom))

    (folder / f"{AT_LIMIT}.xml").write_bytes(
        serialize_invoice(sample_invoice(int(AT_LIMIT), rows=MAX_ROWS))
    )
    return good


@dataclass
class Period:
    """The bad period, exported: what intake refused, the run's items and Heeros's read-out."""

    intake: Intake
    good: list[Invoice]
    run: str
    total: int
    summary: RunSummary
    records: dict[str, ItemRecord]
    received: dict[tuple[str, str, str], dict[str, Any]]
    invoices: dict[str, Invoice]
    seconds: float

    def record(self, number: str) -> ItemRecord:
        found = self.records.get(number)
        assert found is not None, f"invoice {number} is not in run {self.run}"
        return found

    def in_heeros(self, number: str, tenant: tuple[str, str] = TENANT) -> dict[str, Any] | None:
        return self.received.get((*tenant, number))

    def assert_good_exported(self) -> None:
        """Every good invoice of the run was exported, and Heeros stored each once."""
        for invoice in self.good:
            record = self.record(invoice.number)
            assert record.state is State.EXPORTED, record
            entry = self.in_heeros(invoice.number)
            assert entry is not None and entry["stored"] == 1, (invoice.number, entry)
        assert self.summary.exported >= GOOD, self.summary.as_dict()


@pytest.fixture(scope="module")
def period(
    redis_server: LocalProcess,
    sandbox_server: LocalProcess,
    logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Period]:
    redis.Redis.from_url(redis_server.url).flushall()
    httpx.post(f"{sandbox_server.url}/_admin/reset", timeout=10).raise_for_status()
    knobs = {"latency_ms": 10, "confirm_after_s": 0.5, "outage": False, "seed": 11}
    httpx.put(f"{sandbox_server.url}/_admin/knobs", json=knobs, timeout=10).raise_for_status()
    base = tmp_path_factory.mktemp("bad-input")
    folder = base / "invoices"
    folder.mkdir()
    transform = base / "stealing.xsl"
    shipped = Path(str(files("worker.documents") / "data" / "finvoice-3.0.xsl"))
    transform.write_text(STEALING_XSL.format(shipped=shipped), encoding="utf-8")
    config_path = base / "exports.toml"
    config_path.write_text(_config(transform), encoding="utf-8")
    good = _write_folder(folder)

    env = {
        **os.environ,
        "HEEROS_REDIS_URL": redis_server.url,
        "HEEROS_BASE_URL": sandbox_server.url,
        "HEEROS_EXPORT_CONFIG": str(config_path),
        "HEEROS_CLIENT_KEY": KEY,
        **FAST,
    }
    worker = start_worker(env=env, name="bad-input", log_dir=logs)
    try:
        began = time.monotonic()
        intake = read_folder(folder)
        settings = Settings(
            redis_url=redis_server.url, base_url=sandbox_server.url, export_config=config_path
        )
        store = StatusStore(connect(redis_server.url), prefix=settings.key_prefix)
        config = load_export_config(config_path, {"HEEROS_CLIENT_KEY": KEY})
        app = create_app(settings)
        started = start_run(
            app, store, config, intake.invoices, period="2026-11", rejected=intake.rejected
        )
        app.close()
        deadline = time.monotonic() + 120
        summary = summarize(store, started.run)
        while summary is not None and summary.in_progress and time.monotonic() < deadline:
            time.sleep(0.25)
            summary = summarize(store, started.run)
        assert summary is not None
        assert summary.in_progress == 0, (summary.as_dict(), worker.log_tail(40))
        seconds = time.monotonic() - began
        numbers = [i.number for i in intake.invoices] + [r.number for r in intake.rejected]
        members = [
            item_id(number, index) for number in numbers for index in range(len(config.exports))
        ]
        records = {record.number: record for record in store.items(started.run, members)}
        yield Period(
            intake=intake,
            good=good,
            run=started.run,
            total=started.total,
            summary=summary,
            records=records,
            received=sandbox_received(sandbox_server.url),
            invoices={invoice.number: invoice for invoice in intake.invoices},
            seconds=seconds,
        )
    finally:
        worker.stop()


def _refused(period: Period, number: str, *fragments: str) -> str:
    """The invoice was refused at intake and failed alone; its message names it and why."""
    record = period.record(number)
    assert record.state is State.FAILED, record
    assert record.kind == "invoice", record
    message = record.message or ""
    assert message.startswith(f"The invoice {number} could not be exported: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert all(period.in_heeros(number, tenant) is None for tenant in (TENANT, CUSTOM_TENANT))
    period.assert_good_exported()
    return message


def test_the_run_counts_every_invoice_and_exports_the_good_ones(period: Period) -> None:
    refused = {rejection.number for rejection in period.intake.rejected}
    assert refused == {
        "bad-malformed",
        "bad-xxe",
        "bad-xxe-utf16",
        "bad-laughs",
        HUGE,
        "bad-latin1",
        MISSING,
        ABSURD,
        INEXACT,
    }
    assert period.total == GOOD + 2 + len(refused)
    assert period.summary.total == period.total and period.summary.in_progress == 0
    period.assert_good_exported()
    print(f"BAD-INPUT invoices={period.total} refused={len(refused)} seconds={period.seconds:.1f}")


def test_malformed_xml(period: Period) -> None:
    _refused(
        period,
        "bad-malformed",
        "bad-malformed.xml line 5: malformed XML: ",
        "Opening and ending tag mismatch",
    )


def test_external_entities(period: Period) -> None:
    _refused(period, "bad-xxe", "bad-xxe.xml line 2: a DOCTYPE is not allowed")
    # UTF-16 hides the DOCTYPE from a byte search; the parsed document still shows it.
    _refused(period, "bad-xxe-utf16", "bad-xxe-utf16.xml: a DOCTYPE is not allowed")


def test_billion_laughs(period: Period) -> None:
    _refused(period, "bad-laughs", "bad-laughs.xml line 2: a DOCTYPE is not allowed")


def test_an_invoice_of_50000_rows(period: Period) -> None:
    _refused(period, HUGE, f"{HUGE}.xml: invoice {HUGE}: rows: ", f"at most {MAX_ROWS}", "50000")


def test_bytes_that_are_not_utf8(period: Period) -> None:
    _refused(
        period,
        "bad-latin1",
        "bad-latin1.xml line ",
        "the document is not valid UTF-8 as its declaration says",
    )


def test_missing_fields(period: Period) -> None:
    message = _refused(period, MISSING, f"{MISSING}.xml: invoice {MISSING}: ")
    assert "reference: Field required" in message and "due_date: Field required" in message


def test_an_absurd_unit_price(period: Period) -> None:
    _refused(period, ABSURD, f"invoice {ABSURD}: rows[0].unit_price: ", "is out of range")


def test_totals_too_large_to_write_exactly(period: Period) -> None:
    """Each figure is within the model's bounds, but the row's amount (1.2 * 10**14 euros)
    is past what the transform's arithmetic (IEEE doubles, XPath 1.0) holds to the cent:
    the invoice is refused, naming the amount, rather than sent with wrong cents."""
    message = _refused(period, INEXACT, f"invoice {INEXACT}: ", "rows[0].amount ")
    assert "is out of range (at most 100,000,000,000 in absolute value)" in message


def test_a_transform_that_reads_files_or_the_network(period: Period) -> None:
    record = period.record(CUSTOM)
    assert record.export == "Heeros (custom XSLT)", record
    assert record.state is State.FAILED and record.kind == "transform", record
    message = record.message or ""
    assert message.startswith(f"The invoice {CUSTOM} could not be exported: transform "), message
    assert f"failed on invoice {CUSTOM}" in message, message
    assert "file:///etc/passwd" in message and "refused" in message, message
    assert "http://127.0.0.1:9/" in message, message
    assert period.in_heeros(CUSTOM, CUSTOM_TENANT) is None
    period.assert_good_exported()


def test_an_invoice_at_the_row_limit(period: Period) -> None:
    """10,000 rows is within the model's limit; Heeros must take it, or the invoice fail
    with the reason Heeros gave."""
    record = period.record(AT_LIMIT)
    entry = period.in_heeros(AT_LIMIT)
    if record.state is State.EXPORTED:
        assert entry is not None and entry["stored"] == 1, entry
    else:
        assert record.state is State.FAILED, record
        assert record.message is not None and "Error code from Heeros: " in record.message
        print(f"AT-LIMIT invoice {AT_LIMIT} ({MAX_ROWS} rows) failed: {record.message}")
    period.assert_good_exported()
