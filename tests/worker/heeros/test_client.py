"""HeerosClient against an in-memory Heeros (httpx.MockTransport): every answer's mapping."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from worker.config.starttext import SendOptions
from worker.errors import (
    ConfigError,
    ExportError,
    HeerosRateLimited,
    HeerosRefusedError,
    HeerosUnavailable,
    HeerosValidationError,
    InvoiceError,
    LoginError,
    ValidationEntry,
)
from worker.heeros.client import HeerosClient
from worker.heeros.remote import RemoteState, RemoteStatus
from worker.heeros.sessions import clear_token_cache

BASE_URL = "https://heeros.test/sales-invoice-service-v1"
PREFIX = "/sales-invoice-service-v1"
KEY = "Zq7-KEY-7781-distinctive"
LOGIN_FAILED = (
    "Could not log into Heeros. Either the username/password is incorrect or it is not "
    "possible to connect to Heeros at the moment. Please try again in a few minutes."
)
DOCUMENT = '<?xml version="1.0"?><Finvoice Version="3.0"><Name>Pätkä €</Name></Finvoice>'

Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


def answer(status_code: int, body: Any = None, **headers: str) -> httpx.Response:
    """A Heeros answer; ``body`` is JSON unless it is already bytes."""
    content = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body)
    return httpx.Response(status_code, content=content, headers=headers)


def fails(error: type[httpx.TransportError], text: str = "boom") -> Reply:
    def raise_it(request: httpx.Request) -> httpx.Response:
        raise error(text, request=request)

    return raise_it


class FakeHeeros:
    """Answers logins with fresh tokens (unless told otherwise) and calls from a script."""

    def __init__(self, *replies: Reply, logins: tuple[Reply, ...] = ()) -> None:
        self.replies = list(replies)
        self.login_replies = list(logins)
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0
        self.login_delay = 0.0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            if request.url.path == f"{PREFIX}/auth/login":
                reply = self.login_replies.pop(0) if self.login_replies else self._token()
            else:
                assert self.replies, f"unexpected request {request.method} {request.url}"
                reply = self.replies.pop(0)
        if request.url.path == f"{PREFIX}/auth/login":
            time.sleep(self.login_delay)
        if isinstance(reply, httpx.Response):
            # A fresh copy each time: one scripted answer may be served more than once.
            return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)
        return reply(request)

    def _token(self) -> httpx.Response:
        self.tokens_issued += 1
        return answer(200, {"token": f"tok-{self.tokens_issued}", "expiresIn": 3600})

    @property
    def logins(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == f"{PREFIX}/auth/login"]

    @property
    def calls(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != f"{PREFIX}/auth/login"]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    clear_token_cache()
    yield
    clear_token_cache()


def make_client(
    server: FakeHeeros, *, key: str = KEY, base_url: str = BASE_URL, **kwargs: Any
) -> HeerosClient:
    return HeerosClient(
        base_url=base_url,
        office_code="00079",
        customer_code="0042",
        client_identity="opter-user",
        client_key=SecretStr(key),
        transport=server.transport(),
        **kwargs,
    )


def send(client: HeerosClient, **kwargs: Any) -> str:
    arguments: dict[str, Any] = {
        "invoice_number": "12345",
        "document": DOCUMENT.encode("utf-8"),
        "options": SendOptions(),
        "idempotency_key": "inv-12345-v1",
    }
    arguments.update(kwargs)
    return client.send(**arguments)


ACCEPTED = answer(202, {"invoiceId": "H-1", "status": "RECEIVED"})


# Login and the session cache ----------------------------------------------------------


def test_login_body_and_token_cookie() -> None:
    server = FakeHeeros(ACCEPTED)
    assert send(make_client(server)) == "H-1"
    (login,) = server.logins
    assert login.method == "POST"
    assert str(login.url) == f"{BASE_URL}/auth/login"
    assert json.loads(login.content) == {"username": "opter-user", "apiKey": KEY}
    (call,) = server.calls
    assert call.headers["Cookie"] == "LtpaToken=tok-1"


def test_one_login_serves_two_clients_with_the_same_credentials() -> None:
    server = FakeHeeros(ACCEPTED, answer(202, {"invoiceId": "H-2", "status": "RECEIVED"}))
    assert send(make_client(server)) == "H-1"
    assert send(make_client(server), invoice_number="12346") == "H-2"
    assert len(server.logins) == 1
    assert [c.headers["Cookie"] for c in server.calls] == ["LtpaToken=tok-1"] * 2


def test_other_credentials_or_base_url_log_in_separately() -> None:
    server = FakeHeeros(*[ACCEPTED] * 4)
    send(make_client(server))
    send(make_client(server, key="another-key"))
    send(make_client(server, base_url="https://heeros.test/sales-invoice-service-v1/"))
    send(make_client(server, base_url="https://other.test/sales-invoice-service-v1"))
    # The trailing slash names the same service; the other host does not.
    assert len(server.logins) == 3
    assert [c.headers["Cookie"] for c in server.calls] == [
        "LtpaToken=tok-1",
        "LtpaToken=tok-2",
        "LtpaToken=tok-1",
        "LtpaToken=tok-3",
    ]


def test_concurrent_first_calls_log_in_once() -> None:
    server = FakeHeeros(*[ACCEPTED] * 8)
    server.login_delay = 0.05
    client = make_client(server)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(send(client))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["H-1"] * 8
    assert len(server.logins) == 1


def test_a_token_past_its_lifetime_is_renewed() -> None:
    server = FakeHeeros(
        ACCEPTED, ACCEPTED, logins=(answer(200, {"token": "t", "expiresIn": 0.01}),)
    )
    client = make_client(server)
    send(client)
    time.sleep(0.02)
    send(client)
    assert len(server.logins) == 2
    assert [c.headers["Cookie"] for c in server.calls] == ["LtpaToken=t", "LtpaToken=tok-1"]


def test_a_cookie_set_by_the_login_answer_does_not_override_the_token() -> None:
    login = answer(200, {"token": "tok-body"}, **{"Set-Cookie": "LtpaToken=tok-jar; Path=/"})
    server = FakeHeeros(ACCEPTED, logins=(login,))
    send(make_client(server))
    assert server.calls[0].headers["Cookie"] == "LtpaToken=tok-body"


def test_401_logs_in_again_and_retries_once() -> None:
    server = FakeHeeros(answer(401, {"errorCode": "AUTH_FAILED", "errorMessage": "x"}), ACCEPTED)
    assert send(make_client(server)) == "H-1"
    assert len(server.logins) == 2
    assert [c.headers["Cookie"] for c in server.calls] == ["LtpaToken=tok-1", "LtpaToken=tok-2"]
    # Same request both times: same key, same body.
    first, second = server.calls
    assert first.content == second.content
    assert second.headers["Idempotency-Key"] == "inv-12345-v1"


def test_401_twice_is_a_login_error_and_the_token_is_dropped() -> None:
    server = FakeHeeros(answer(401), answer(401), ACCEPTED)
    client = make_client(server)
    with pytest.raises(LoginError) as caught:
        send(client)
    assert str(caught.value) == LOGIN_FAILED
    assert len(server.logins) == 2
    assert send(client) == "H-1"
    assert len(server.logins) == 3


@pytest.mark.parametrize(
    "refusal",
    [
        answer(401, {"errorCode": "AUTH_FAILED", "errorMessage": "Invalid credentials"}),
        answer(403, {"errorCode": "FORBIDDEN", "errorMessage": "No access"}),
        answer(400, b"<html>bad</html>"),
    ],
    ids=["401", "403", "400-html"],
)
def test_a_refused_login_is_a_login_error_with_message_1(refusal: httpx.Response) -> None:
    server = FakeHeeros(logins=(refusal,))
    with pytest.raises(LoginError) as caught:
        send(make_client(server))
    assert str(caught.value) == LOGIN_FAILED
    assert server.calls == []


def test_a_refused_relogin_after_401_is_a_login_error() -> None:
    relogin_refused = answer(401, {"errorCode": "AUTH_FAILED", "errorMessage": "Key revoked"})
    server = FakeHeeros(answer(401), logins=(answer(200, {"token": "a"}), relogin_refused))
    with pytest.raises(LoginError) as caught:
        send(make_client(server))
    assert str(caught.value) == LOGIN_FAILED
    assert len(server.logins) == 2
    assert len(server.calls) == 1


def test_login_network_error_is_unavailable() -> None:
    server = FakeHeeros(logins=(fails(httpx.ConnectError, "connection refused"),))
    with pytest.raises(HeerosUnavailable) as caught:
        send(make_client(server))
    assert caught.value.status_code is None
    assert "ConnectError: connection refused" in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_login_5xx_is_unavailable() -> None:
    server = FakeHeeros(logins=(answer(503, b"maintenance"),))
    with pytest.raises(HeerosUnavailable) as caught:
        send(make_client(server))
    assert caught.value.status_code == 503


def test_login_429_is_rate_limited() -> None:
    server = FakeHeeros(logins=(answer(429, None, **{"Retry-After": "4"}),))
    with pytest.raises(HeerosRateLimited) as caught:
        send(make_client(server))
    assert caught.value.retry_after == 4.0
    assert caught.value.at_login


# The message a user sees: 1 for any failure to connect or log in, 2 for Heeros's answer to a send.

SSL_FAILURE = "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"
REFUSED = "[Errno 111] Connection refused"


@pytest.mark.parametrize(
    ("login", "call"),
    [
        (fails(httpx.ConnectError, REFUSED), None),
        (fails(httpx.ConnectTimeout, "timed out"), None),
        (fails(httpx.ConnectError, SSL_FAILURE), None),
        (answer(503, {"errorCode": "SERVICE_UNAVAILABLE", "errorMessage": "retry later"}), None),
        (answer(502, b"<html>Bad Gateway</html>"), None),
        (answer(429, None, **{"Retry-After": "2"}), None),
        (answer(401, {"errorCode": "AUTH_FAILED", "errorMessage": "wrong API key"}), None),
        (None, fails(httpx.ConnectError, REFUSED)),
        (None, fails(httpx.ConnectTimeout, "timed out")),
    ],
    ids=[
        "login-refused",
        "login-connect-timeout",
        "login-tls",
        "login-503",
        "login-502-html",
        "login-429",
        "wrong-credentials",
        "send-refused",
        "send-connect-timeout",
    ],
)
def test_every_failure_to_connect_or_log_in_is_message_1(
    login: Reply | None, call: Reply | None
) -> None:
    server = FakeHeeros(*([call] if call else []), logins=(login,) if login else ())
    with pytest.raises(ExportError) as caught:
        send(make_client(server))
    assert caught.value.user_message("12345") == LOGIN_FAILED


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            answer(503, {"errorCode": "SERVICE_UNAVAILABLE", "errorMessage": "retry later"}),
            "Error code from Heeros: HTTP_503. Error message from Heeros: "
            "Heeros answered HTTP 503: SERVICE_UNAVAILABLE: retry later",
        ),
        (
            answer(422, {"errorCode": "PERIOD_CLOSED", "errorMessage": "Closed"}),
            "Error code from Heeros: PERIOD_CLOSED. Error message from Heeros: Closed",
        ),
    ],
    ids=["send-503", "send-422"],
)
def test_an_error_heeros_answers_to_a_send_is_message_2(
    reply: httpx.Response, expected: str
) -> None:
    server = FakeHeeros(reply)
    with pytest.raises(ExportError) as caught:
        send(make_client(server))
    assert caught.value.user_message("12345") == (
        f"It was not possible to send the invoice to Heeros. {expected}"
    )


@pytest.mark.parametrize("body", [b"", b"<html/>", b'{"expiresIn": 5}', b'{"token": "a b"}'])
def test_login_2xx_without_a_usable_token_is_unavailable(body: bytes) -> None:
    server = FakeHeeros(logins=(answer(200, body),))
    with pytest.raises(HeerosUnavailable, match="without a usable token"):
        send(make_client(server))
    assert server.calls == []


# send ---------------------------------------------------------------------------------


def test_send_request_shape() -> None:
    server = FakeHeeros(ACCEPTED)
    options = SendOptions(move_only_to_ledger=True, update_customer=False)
    send(make_client(server), options=options, idempotency_key="idem-1")
    (call,) = server.calls
    assert call.method == "POST"
    assert call.url.path == f"{PREFIX}/sales-invoices"
    assert dict(call.url.params) == {"tt": "00079", "la": "0042"}
    assert call.headers["Idempotency-Key"] == "idem-1"
    assert call.headers["Content-Type"] == "application/json"
    assert json.loads(call.content) == {
        "externalReference": "12345",
        "format": "FINVOICE_3_0",
        "encoding": "UTF-8",
        "options": {
            "moveOnlyToLedger": True,
            "sendToCustomer": False,
            "createCustomer": True,
            "updateCustomer": False,
            "createProduct": True,
            "updateProduct": True,
            "createAccountingObjects": True,
        },
        "content": DOCUMENT,
    }


def test_send_decodes_iso_8859_15() -> None:
    server = FakeHeeros(ACCEPTED)
    document = DOCUMENT.encode("iso8859-15")
    assert b"P\xe4tk\xe4 \xa4" in document
    send(make_client(server), document=document, encoding="ISO-8859-15")
    body = json.loads(server.calls[0].content)
    assert body["encoding"] == "ISO-8859-15"
    assert body["content"] == DOCUMENT
    assert "Pätkä €" in body["content"]


def test_send_with_an_unsendable_document_makes_no_request() -> None:
    server = FakeHeeros()
    with pytest.raises(InvoiceError, match="not valid UTF-8"):
        send(make_client(server), document=b"\xff\xfe")
    with pytest.raises(ConfigError, match="UTF-8 or ISO-8859-15"):
        send(make_client(server), encoding="UTF-16")
    assert server.requests == []


def test_send_409_duplicate_returns_the_named_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="worker.heeros.client")
    body = {"errorCode": "DUPLICATE", "errorMessage": "Already received", "invoiceId": "H-OLD"}
    server = FakeHeeros(answer(409, body))
    assert send(make_client(server)) == "H-OLD"
    (line,) = [r for r in caplog.records if "already in Heeros" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert line.getMessage() == (
        "heeros send invoice=12345 tt=00079 la=0042: already in Heeros as id=H-OLD"
    )


def test_send_409_without_id_looks_the_invoice_up() -> None:
    found = answer(200, {"items": [{"invoiceId": "H-FOUND", "status": "COMPLETE"}]})
    server = FakeHeeros(answer(409, b""), found)
    assert send(make_client(server)) == "H-FOUND"
    assert dict(server.calls[1].url.params) == {
        "externalReference": "12345",
        "tt": "00079",
        "la": "0042",
    }


def test_send_409_without_id_and_nothing_found_is_refused() -> None:
    server = FakeHeeros(answer(409, {"errorCode": "DUPLICATE"}), answer(200, {"items": []}))
    with pytest.raises(HeerosRefusedError) as caught:
        send(make_client(server))
    assert (caught.value.code, caught.value.heeros_message) == ("DUPLICATE", "Conflict")


def test_send_400_validation(caplog: pytest.LogCaptureFixture) -> None:
    body = {
        "errorCode": "VALIDATION_FAILED",
        "errorMessage": "Invalid invoice",
        "validationErrors": [
            {"path": "/Finvoice/BuyerPartyDetails", "message": "Unknown buyer"},
            {"path": "/Finvoice/InvoiceRow[2]/ArticleIdentifier", "message": "Unknown product"},
        ],
    }
    server = FakeHeeros(answer(400, body))
    with pytest.raises(HeerosValidationError) as caught:
        send(make_client(server), invoice_number="777")
    error = caught.value
    assert str(error) == (
        "It was not possible to send the invoice 777 to Heeros due to validation errors. "
        "Number of errors: 2. Please contact Opter support."
    )
    assert error.invoice_number == "777"
    assert error.entries == [
        ValidationEntry("/Finvoice/BuyerPartyDetails", "Unknown buyer"),
        ValidationEntry("/Finvoice/InvoiceRow[2]/ArticleIdentifier", "Unknown product"),
    ]
    # The operator's log names each field Heeros refused; the user sees message 5.
    (logged,) = [r.getMessage() for r in caplog.records if "validation errors:" in r.getMessage()]
    assert "/Finvoice/BuyerPartyDetails: Unknown buyer" in logged
    assert "/Finvoice/InvoiceRow[2]/ArticleIdentifier: Unknown product" in logged


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"Retry-After": "12"}, 12.0), ({}, 1.0), ({"Retry-After": "later"}, 1.0)],
)
def test_send_429(headers: dict[str, str], retry_after: float) -> None:
    server = FakeHeeros(answer(429, None, **headers))
    with pytest.raises(HeerosRateLimited) as caught:
        send(make_client(server))
    assert caught.value.retry_after == retry_after


@pytest.mark.parametrize("status_code", [500, 502, 503])
def test_send_5xx_is_unavailable(status_code: int) -> None:
    server = FakeHeeros(answer(status_code, {"errorCode": "DOWN", "errorMessage": "Busy"}))
    with pytest.raises(HeerosUnavailable) as caught:
        send(make_client(server))
    assert caught.value.status_code == status_code
    assert str(caught.value) == f"Heeros answered HTTP {status_code}: DOWN: Busy"


def test_send_other_4xx_is_refused_with_the_body_code() -> None:
    server = FakeHeeros(answer(422, {"errorCode": "PERIOD_CLOSED", "errorMessage": "Closed"}))
    with pytest.raises(HeerosRefusedError) as caught:
        send(make_client(server))
    assert (caught.value.code, caught.value.heeros_message) == ("PERIOD_CLOSED", "Closed")


def test_send_other_4xx_with_a_malformed_body_falls_back_to_the_status() -> None:
    server = FakeHeeros(answer(403, b"<html><body>Forbidden by proxy</body></html>"))
    with pytest.raises(HeerosRefusedError) as caught:
        send(make_client(server))
    assert (caught.value.code, caught.value.heeros_message) == ("HTTP_403", "Forbidden")


@pytest.mark.parametrize("body", [b"", b"{}", b"<html/>", b'{"invoiceId": null}'])
def test_send_2xx_without_an_id_is_unavailable(body: bytes) -> None:
    server = FakeHeeros(answer(202, body))
    with pytest.raises(HeerosUnavailable, match="without naming its id"):
        send(make_client(server))


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError],
)
def test_network_errors_are_unavailable(error: type[httpx.TransportError]) -> None:
    server = FakeHeeros(fails(error, "went wrong"))
    with pytest.raises(HeerosUnavailable) as caught:
        send(make_client(server))
    assert caught.value.status_code is None
    assert str(caught.value) == f"Heeros could not be reached ({error.__name__}: went wrong)"
    assert type(caught.value.__cause__) is error


# status and find ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("RECEIVED", RemoteState.PENDING),
        ("PROCESSING", RemoteState.PENDING),
        ("COMPLETE", RemoteState.CONFIRMED),
        ("SENDING", RemoteState.CONFIRMED),
        ("ARCHIVED", RemoteState.CONFIRMED),
        ("TO_LEDGER", RemoteState.CONFIRMED),
        ("INCOMPLETE", RemoteState.INCOMPLETE),
    ],
)
def test_status_of_each_name(name: str, state: RemoteState) -> None:
    body = {"invoiceId": "H-1", "status": name, "errorCode": None, "errorMessage": None}
    server = FakeHeeros(answer(200, body))
    assert make_client(server).status("H-1") == RemoteStatus("H-1", state, name, None, None)
    (call,) = server.calls
    assert call.method == "GET"
    assert call.url.path == f"{PREFIX}/sales-invoices/H-1"
    assert dict(call.url.params) == {"tt": "00079", "la": "0042"}
    assert call.headers["Cookie"] == "LtpaToken=tok-1"


def test_status_error_carries_code_and_message() -> None:
    body = {"invoiceId": "H-1", "status": "ERROR", "errorCode": "E42", "errorMessage": "Bad VAT"}
    server = FakeHeeros(answer(200, body))
    assert make_client(server).status("H-1") == RemoteStatus(
        "H-1", RemoteState.ERROR, "ERROR", "E42", "Bad VAT"
    )


def test_status_404_is_refused_not_found() -> None:
    body = {"errorCode": "NOT_FOUND", "errorMessage": "No invoice H-X"}
    server = FakeHeeros(answer(404, body))
    with pytest.raises(HeerosRefusedError) as caught:
        make_client(server).status("H-X")
    assert (caught.value.code, caught.value.heeros_message) == ("NOT_FOUND", "No invoice H-X")


def test_status_malformed_answer_is_unavailable() -> None:
    server = FakeHeeros(answer(200, b"<html/>"))
    with pytest.raises(HeerosUnavailable, match="H-1 without a status"):
        make_client(server).status("H-1")


def test_status_401_then_success() -> None:
    server = FakeHeeros(answer(401), answer(200, {"invoiceId": "H-1", "status": "SENDING"}))
    assert make_client(server).status("H-1").state is RemoteState.CONFIRMED
    assert len(server.logins) == 2


def test_find_returns_the_first_item() -> None:
    body = {
        "items": [
            {"invoiceId": "H-7", "status": "TO_LEDGER"},
            {"invoiceId": "H-8", "status": "RECEIVED"},
        ]
    }
    server = FakeHeeros(answer(200, body))
    assert make_client(server).find("555") == RemoteStatus(
        "H-7", RemoteState.CONFIRMED, "TO_LEDGER", None, None
    )
    (call,) = server.calls
    assert call.url.path == f"{PREFIX}/sales-invoices"
    assert dict(call.url.params) == {"externalReference": "555", "tt": "00079", "la": "0042"}


def test_find_nothing() -> None:
    server = FakeHeeros(answer(200, {"items": []}))
    assert make_client(server).find("555") is None


def test_find_malformed_answer_is_unavailable() -> None:
    server = FakeHeeros(answer(200, {"items": "none"}))
    with pytest.raises(HeerosUnavailable, match="look-up of invoice 555"):
        make_client(server).find("555")


# Construction, pool, logging ----------------------------------------------------------


def test_timeouts_reach_each_request() -> None:
    server = FakeHeeros(ACCEPTED)
    send(make_client(server, connect_timeout=2.0, read_timeout=9.0))
    assert server.calls[0].extensions["timeout"] == {
        "connect": 2.0,
        "read": 9.0,
        "write": 9.0,
        "pool": 9.0,
    }


def test_close_closes_only_an_owned_http_client() -> None:
    server = FakeHeeros()
    own = make_client(server)
    with own as entered:
        assert entered is own
    assert own._http.is_closed
    shared = httpx.Client(transport=server.transport())
    client = HeerosClient(
        base_url=BASE_URL,
        office_code="1",
        customer_code="2",
        client_identity="u",
        client_key=SecretStr(KEY),
        http=shared,
    )
    client.close()
    assert not shared.is_closed
    shared.close()


def test_an_injected_http_client_is_used() -> None:
    server = FakeHeeros(ACCEPTED)
    with httpx.Client(transport=server.transport()) as http:
        client = HeerosClient(
            base_url=BASE_URL,
            office_code="00079",
            customer_code="0042",
            client_identity="opter-user",
            client_key=SecretStr(KEY),
            http=http,
        )
        assert send(client) == "H-1"
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("overrides", "text"),
    [
        ({"base_url": "not a url"}, "http"),
        ({"base_url": "ftp://heeros.test/"}, "http"),
        ({"office_code": ""}, "office code"),
        ({"customer_code": " "}, "customer code"),
        ({"client_identity": ""}, "client identity"),
        ({"client_key": SecretStr("")}, "client key"),
        ({"http": httpx.Client()}, "not both"),
    ],
)
def test_bad_configuration_is_a_config_error(overrides: dict[str, Any], text: str) -> None:
    arguments: dict[str, Any] = {
        "base_url": BASE_URL,
        "office_code": "1",
        "customer_code": "2",
        "client_identity": "u",
        "client_key": SecretStr(KEY),
        "transport": FakeHeeros().transport(),
    }
    arguments.update(overrides)
    with pytest.raises(ConfigError, match=text):
        HeerosClient(**arguments)


def test_repr_names_the_tenant_not_the_key() -> None:
    text = repr(make_client(FakeHeeros()))
    assert text == (
        "HeerosClient(base_url='https://heeros.test/sales-invoice-service-v1',"
        " office_code='00079', customer_code='0042', client_identity='opter-user')"
    )


def test_one_log_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="worker.heeros.client")
    server = FakeHeeros(ACCEPTED, answer(200, {"invoiceId": "H-1", "status": "COMPLETE"}))
    client = make_client(server)
    send(client)
    client.status("H-1")
    lines = [r.getMessage() for r in caplog.records if r.name == "worker.heeros.client"]
    assert len(lines) == 3
    assert lines[0].startswith("heeros login identity=opter-user tt=00079 la=0042 http=200 ")
    assert lines[1].startswith("heeros send invoice=12345 tt=00079 la=0042 http=202 ")
    assert lines[2].startswith("heeros status id=H-1 tt=00079 la=0042 http=200 ")
    assert all(line.endswith(" ms") for line in lines)


# The client key stays secret ----------------------------------------------------------

KEY_ECHO = {"errorCode": f"BAD_{KEY}", "errorMessage": f"key {KEY} refused"}

SECRECY_SCENARIOS: dict[str, tuple[tuple[Reply, ...], tuple[Reply, ...], str]] = {
    # name: (login replies, call replies, operation)
    "login refused": ((answer(401, KEY_ECHO),), (), "send"),
    "login network error": ((fails(httpx.ConnectError, "refused"),), (), "send"),
    "login timeout": ((fails(httpx.ReadTimeout, "slow"),), (), "send"),
    "login 5xx": ((answer(503, KEY_ECHO),), (), "send"),
    "login 429": ((answer(429, KEY_ECHO),), (), "send"),
    "login malformed": ((answer(200, b"\x00{not json"),), (), "send"),
    "401 twice": ((), (answer(401, KEY_ECHO), answer(401, KEY_ECHO)), "send"),
    "validation": (
        (),
        (
            answer(
                400,
                {
                    "errorCode": "VALIDATION_FAILED",
                    "errorMessage": KEY,
                    "validationErrors": [{"path": KEY, "message": f"x{KEY}x"}],
                },
            ),
        ),
        "send",
    ),
    "duplicate": ((), (answer(409, {"errorCode": "DUPLICATE", "invoiceId": "H-1"}),), "send"),
    "duplicate unknown": ((), (answer(409, KEY_ECHO | {"errorCode": "DUPLICATE"}),) * 2, "send"),
    "rate limited": ((), (answer(429, KEY_ECHO, **{"Retry-After": "3"}),), "send"),
    "5xx": ((), (answer(500, KEY_ECHO),), "send"),
    "other 4xx": ((), (answer(422, KEY_ECHO),), "send"),
    "malformed 4xx": ((), (answer(418, f"<p>{KEY}</p>".encode()),), "send"),
    "malformed 2xx": ((), (answer(202, b"<html/>"),), "send"),
    "connect error": ((), (fails(httpx.ConnectError, "refused"),), "send"),
    "read timeout": ((), (fails(httpx.ReadTimeout, "timed out"),), "send"),
    "protocol error": ((), (fails(httpx.RemoteProtocolError, "closed"),), "send"),
    "status error state": (
        (),
        (answer(200, {"invoiceId": "H-1", "status": "ERROR"} | KEY_ECHO),),
        "status",
    ),
    "status 404": ((), (answer(404, KEY_ECHO),), "status"),
    "status malformed": ((), (answer(200, b"[]"),), "status"),
    "find malformed": ((), (answer(200, b'{"items": [{}]}'),), "find"),
}


def _texts_of(error: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        yield repr(vars(current))
        current = current.__cause__ or current.__context__


@pytest.mark.parametrize("scenario", list(SECRECY_SCENARIOS))
def test_the_client_key_never_leaks(scenario: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "worker"):
        caplog.set_level(logging.DEBUG, logger=name)
    logins, replies, operation = SECRECY_SCENARIOS[scenario]
    server = FakeHeeros(*replies, logins=logins)
    client = make_client(server)
    texts = [repr(client)]
    try:
        if operation == "send":
            result: object = send(client)
        elif operation == "status":
            result = client.status("H-1")
        else:
            result = client.find("12345")
        texts.append(repr(result))
    except ExportError as error:
        texts.extend(_texts_of(error))
        if isinstance(error, HeerosValidationError):
            texts.append(repr(error.entries))
    else:
        assert scenario in ("duplicate", "status error state"), f"{scenario} did not fail"

    assert caplog.records, "no log record was captured"
    if scenario not in ("login network error", "login timeout"):
        assert any(r.name == "httpx" for r in caplog.records)
    for record in caplog.records:
        texts.extend([record.getMessage(), repr(record.args), str(record.msg)])
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
    assert texts
    leaks = [text for text in texts if KEY in text]
    assert leaks == []
    # On the wire the key travels only in the login body: never in a URL or a header.
    for request in server.requests:
        assert KEY not in str(request.url)
        assert all(KEY not in value for value in request.headers.values())
        if request.url.path != f"{PREFIX}/auth/login":
            assert KEY.encode() not in request.content
    assert [KEY.encode() in r.content for r in server.logins] == [True] * len(server.logins)


def test_heeros_text_echoing_the_key_is_scrubbed() -> None:
    server = FakeHeeros(answer(422, KEY_ECHO))
    with pytest.raises(HeerosRefusedError) as caught:
        send(make_client(server))
    assert caught.value.code == "BAD_[redacted]"
    assert caught.value.heeros_message == "key [redacted] refused"
