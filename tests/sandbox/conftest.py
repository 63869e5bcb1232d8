"""Fixtures for the sandbox tests: a fake clock, Finvoice samples and an in-process client."""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from starlette.applications import Starlette

from sandbox import Knobs, create_app

MINIMAL = Path(__file__).with_name("finvoice_minimal.xml")
TT, LA = "00079", "001"
EINVOICE_ADDRESS = "003776543210"
EINVOICE_OPERATOR = "NDEAFIHH"
ALL_TRUE = {
    "moveOnlyToLedger": False,
    "sendToCustomer": False,
    "createCustomer": True,
    "updateCustomer": True,
    "createProduct": True,
    "updateProduct": True,
    "createAccountingObjects": True,
}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sample:
    """An editable copy of the minimal valid Finvoice 3.0 document (paths relative to root)."""

    def __init__(self) -> None:
        self.root = etree.fromstring(MINIMAL.read_bytes())

    def find(self, path: str) -> Any:
        found = self.root.find(path)
        assert found is not None, path
        return found

    def set(self, path: str, value: str) -> Sample:
        self.find(path).text = value
        return self

    def set_all(self, path: str, value: str) -> Sample:
        """Set the text of every element matching ``path``."""
        for element in self.root.iterfind(path):
            element.text = value
        return self

    def remove(self, path: str) -> Sample:
        element = self.find(path)
        element.getparent().remove(element)
        return self

    def add(self, parent: str, tag: str, value: str, **attributes: str) -> Sample:
        etree.SubElement(self.find(parent), tag, attributes).text = value
        return self

    def copy_row(self) -> Sample:
        """Append a copy of the first row after the last one."""
        rows = self.root.findall("InvoiceRow")
        rows[-1].addnext(copy.deepcopy(rows[0]))
        return self

    def insert_after(self, path: str, tag: str, value: str) -> Sample:
        """Put a new element ``tag`` right after the one at ``path``."""
        element = etree.Element(tag)
        element.text = value
        self.find(path).addnext(element)
        return self

    def einvoice(
        self, address: str = EINVOICE_ADDRESS, operator: str = EINVOICE_OPERATOR
    ) -> Sample:
        """Add an e-invoice address for the buyer where Finvoice 3.0 has room for it
        (``SellerInformationDetails/InvoiceRecipientDetails``)."""
        info = self.root.find("SellerInformationDetails")
        if info is None:
            info = etree.Element("SellerInformationDetails")
            self.find("SellerPartyDetails").addnext(info)
        details = etree.SubElement(info, "InvoiceRecipientDetails")
        etree.SubElement(details, "InvoiceRecipientAddress").text = address
        etree.SubElement(details, "InvoiceRecipientIntermediatorAddress").text = operator
        return self

    def add_text_row(self, *children: tuple[str, str]) -> Sample:
        """Append a row made of the given (tag, text) children only."""
        row = etree.Element("InvoiceRow")
        for tag, value in children:
            etree.SubElement(row, tag).text = value
        self.root.findall("InvoiceRow")[-1].addnext(row)
        return self

    def text(self, encoding: str = "UTF-8") -> str:
        data = etree.tostring(self.root, xml_declaration=True, encoding=encoding)
        assert isinstance(data, bytes)
        return data.decode(encoding)


class Api:
    """The contract calls, as a client of the sandbox would make them."""

    def __init__(self, http: httpx.AsyncClient, tt: str = TT, la: str = LA) -> None:
        self.http = http
        self.tt = tt
        self.la = la
        self.token: str | None = None
        self._keys = itertools.count(1)

    def tenant(self, tt: str, la: str) -> Api:
        other = Api(self.http, tt, la)
        other.token = self.token
        return other

    @property
    def params(self) -> dict[str, str]:
        return {"tt": self.tt, "la": self.la}

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"LtpaToken={self.token}"} if self.token else {}

    async def login(self, username: str = "demo", key: str = "demo-key") -> httpx.Response:
        answer = await self.http.post("/auth/login", json={"username": username, "apiKey": key})
        if answer.status_code == 200:
            self.token = answer.json()["token"]
        return answer

    def body(
        self, content: str, reference: str = "1001", encoding: str = "UTF-8", **options: bool
    ) -> dict[str, Any]:
        return {
            "externalReference": reference,
            "format": "FINVOICE_3_0",
            "encoding": encoding,
            "options": {**ALL_TRUE, **options},
            "content": content,
        }

    async def send(
        self,
        content: str | None = None,
        reference: str = "1001",
        *,
        key: str | None = None,
        encoding: str = "UTF-8",
        **options: bool,
    ) -> httpx.Response:
        body = self.body(content or Sample().text(), reference, encoding, **options)
        return await self.post(body, key=key)

    async def post(self, body: Any, *, key: str | None = None) -> httpx.Response:
        headers = {**self.headers, "Idempotency-Key": key or f"key-{next(self._keys)}"}
        return await self.http.post(
            "/sales-invoices", params=self.params, json=body, headers=headers
        )

    async def status(self, invoice_id: str) -> httpx.Response:
        return await self.http.get(
            f"/sales-invoices/{invoice_id}", params=self.params, headers=self.headers
        )

    async def lookup(self, reference: str) -> httpx.Response:
        params = {**self.params, "externalReference": reference}
        return await self.http.get("/sales-invoices", params=params, headers=self.headers)

    async def registers(self) -> dict[str, Any]:
        answer = await self.http.get("/_admin/registers", params=self.params)
        assert answer.status_code == 200
        result: dict[str, Any] = answer.json()
        return result

    async def received(self) -> dict[str, dict[str, Any]]:
        """This tenant's received entries, by externalReference."""
        answer = await self.http.get("/_admin/received", params=self.params)
        tenants = answer.json()["tenants"]
        return {entry["externalReference"]: entry for t in tenants for entry in t["received"]}

    async def invoices(self, prefix: str | None = None) -> list[dict[str, Any]]:
        """This tenant's stored invoices, as ``GET /_admin/invoices`` lists them."""
        params = {**self.params, **({"prefix": prefix} if prefix is not None else {})}
        answer = await self.http.get("/_admin/invoices", params=params)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["invoices"]
        return found

    async def knobs(self, **changes: Any) -> httpx.Response:
        answer = await self.http.put("/_admin/knobs", json=changes)
        assert answer.status_code == 200, answer.text
        return answer

    @staticmethod
    def errors(answer: httpx.Response) -> list[tuple[str, str]]:
        """The (path, message) entries of a VALIDATION_FAILED answer."""
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["errorCode"] == "VALIDATION_FAILED"
        return [(entry["path"], entry["message"]) for entry in body["validationErrors"]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def knobs() -> Knobs:
    return Knobs(confirm_after_s=10.0)


@pytest.fixture
def app(knobs: Knobs, clock: Clock) -> Starlette:
    return create_app(knobs, users={"demo": "demo-key", "other": "other-key"}, clock=clock)


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


@pytest.fixture
def connect() -> Callable[[Starlette], AbstractAsyncContextManager[Api]]:
    """Open a logged-in client on another app: ``async with connect(app) as api``."""

    @asynccontextmanager
    async def connected(app: Starlette) -> AsyncIterator[Api]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            client = Api(http)
            assert (await client.login()).status_code == 200
            yield client

    return connected


@pytest.fixture
async def api(http: httpx.AsyncClient) -> Api:
    """A client already logged in as ``demo`` for tenant (00079, 001)."""
    client = Api(http)
    assert (await client.login()).status_code == 200
    return client


@pytest.fixture
def sample() -> Sample:
    return Sample()


@pytest.fixture
def new_sample() -> type[Sample]:
    """Make more samples: ``new_sample()``."""
    return Sample
