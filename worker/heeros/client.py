"""The Heeros client: sends invoices and asks for their status.

:class:`HeerosClient` does the I/O and maps every answer onto the project's
error tree; what the requests and answers look like on the wire is
:mod:`worker.heeros.wire`'s business. httpx errors never leave this module.

Login happens once per process and credential: the session token is cached by
:mod:`worker.heeros.sessions`, shared by every client in the process, and renewed
when a call is answered 401 (once per call) or when its announced lifetime runs
out. The client key is only ever in the login request's JSON body: never in a URL, a log record,
an exception or a repr; text Heeros sends back is scrubbed of it too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from types import TracebackType
from typing import Self

import httpx
from pydantic import SecretStr

from worker.config.starttext import SendOptions
from worker.errors import (
    MESSAGE_LOGIN_FAILED,
    ConfigError,
    ExportError,
    HeerosRateLimited,
    HeerosRefusedError,
    HeerosUnavailable,
    HeerosValidationError,
    LoginError,
    ValidationEntry,
    validation_message,
)
from worker.heeros import wire
from worker.heeros.remote import RemoteStatus
from worker.heeros.sessions import cache_key, forget_token, session_token, tls_context
from worker.heeros.tracing import traced
from worker.heeros.wire import Failure, FailureKind, LoginSession, WireRequest

logger = logging.getLogger(__name__)

# A worker process sends one request at a time: one kept-alive connection is the
# normal case, a second one covers a caller that shares the client between threads.
POOL_LIMITS = httpx.Limits(max_connections=2, max_keepalive_connections=1, keepalive_expiry=30.0)

_REDACTED = "[redacted]"


class HeerosClient:
    """A client for one Heeros tenant (office code ``tt``, customer code ``la``)."""

    def __init__(
        self,
        *,
        base_url: str,
        office_code: str,
        customer_code: str,
        client_identity: str,
        client_key: SecretStr,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ConfigError(f"Heeros base URL {base_url!r} is not a URL") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"Heeros base URL {base_url!r} must be an http(s) URL")
        for name, value in (
            ("office code", office_code),
            ("customer code", customer_code),
            ("client identity", client_identity),
        ):
            if not value.strip():
                raise ConfigError(f"the Heeros {name} is empty")
        key = client_key.get_secret_value()
        if not key:
            raise ConfigError("the Heeros client key is empty")
        if http is not None and transport is not None:
            raise ConfigError("give HeerosClient either an http client or a transport, not both")

        self._base_url = base_url.rstrip("/")
        self._office_code = office_code
        self._customer_code = customer_code
        self._identity = client_identity
        self._key = client_key
        self._cache_key = cache_key(self._base_url, client_identity, key)
        self._owns_http = http is None
        if http is None:
            verify = tls_context()
            http = httpx.Client(
                transport=traced(transport, verify=verify, limits=POOL_LIMITS),
                timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
                limits=POOL_LIMITS,
                verify=verify,
            )
        self._http = http

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def office_code(self) -> str:
        return self._office_code

    @property
    def customer_code(self) -> str:
        return self._customer_code

    def __repr__(self) -> str:
        return (
            f"HeerosClient(base_url={self._base_url!r}, office_code={self._office_code!r},"
            f" customer_code={self._customer_code!r}, client_identity={self._identity!r})"
        )

    def close(self) -> None:
        """Close the HTTP client, if this client created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Public calls ----------------------------------------------------------------------

    def send(
        self,
        invoice_number: str,
        document: bytes,
        options: SendOptions,
        idempotency_key: str,
        *,
        encoding: str = "UTF-8",
    ) -> str:
        """Send one Finvoice document; return the Heeros invoice id.

        An invoice Heeros already holds (same idempotency key or invoice number)
        is a success: its id is returned.

        Raises LoginError, HeerosValidationError, HeerosRefusedError (permanent),
        HeerosUnavailable, HeerosRateLimited (transient), or InvoiceError /
        ConfigError for a document that cannot be sent as given.
        """
        request = wire.send_request(
            office_code=self._office_code,
            customer_code=self._customer_code,
            invoice_number=invoice_number,
            document=document,
            encoding=encoding,
            options=options,
            idempotency_key=idempotency_key,
        )
        response, failure = self._call("send", f"invoice={invoice_number}", request)
        if failure is None:
            invoice_id = wire.parse_accepted(response.content)
            if invoice_id is None:
                raise HeerosUnavailable(
                    f"Heeros accepted invoice {invoice_number} without naming its id",
                    status_code=None,
                )
            return invoice_id
        if failure.kind is FailureKind.DUPLICATE:
            return self._duplicate(invoice_number, failure)
        if failure.kind is FailureKind.VALIDATION:
            entries = [
                ValidationEntry(path=self._scrub(e.path), message=self._scrub(e.message))
                for e in failure.entries
            ]
            logger.warning(
                "heeros send invoice=%s tt=%s la=%s refused: %d validation errors: %s",
                invoice_number,
                self._office_code,
                self._customer_code,
                len(entries),
                "; ".join(f"{entry.path}: {entry.message}" for entry in entries[:10]),
            )
            raise HeerosValidationError(
                validation_message(invoice_number, len(entries)),
                invoice_number=invoice_number,
                entries=entries,
            )
        raise self._error(failure)

    def status(self, invoice_id: str) -> RemoteStatus:
        """The processing status of the invoice Heeros knows as ``invoice_id``.

        Raises HeerosRefusedError (code NOT_FOUND for an unknown id), LoginError,
        HeerosUnavailable or HeerosRateLimited.
        """
        request = wire.status_request(
            office_code=self._office_code,
            customer_code=self._customer_code,
            invoice_id=invoice_id,
        )
        response, failure = self._call("status", f"id={invoice_id}", request)
        if failure is not None:
            raise self._error(failure)
        status = wire.parse_status(response.content, invoice_id=invoice_id)
        if status is None:
            raise HeerosUnavailable(
                f"Heeros answered the status of invoice {invoice_id} without a status"
            )
        return self._scrub_status(status)

    def find(self, invoice_number: str) -> RemoteStatus | None:
        """The invoice Heeros holds for the source's ``invoice_number``, or None.

        Raises LoginError, HeerosRefusedError, HeerosUnavailable or HeerosRateLimited.
        """
        request = wire.find_request(
            office_code=self._office_code,
            customer_code=self._customer_code,
            invoice_number=invoice_number,
        )
        response, failure = self._call("find", f"invoice={invoice_number}", request)
        if failure is not None:
            raise self._error(failure)
        found = wire.parse_found(response.content)
        if found is None:
            raise HeerosUnavailable(
                f"Heeros answered the look-up of invoice {invoice_number} unreadably"
            )
        return self._scrub_status(found[0]) if found else None

    # Calls with a session --------------------------------------------------------------

    def _call(
        self, operation: str, subject: str, request: WireRequest
    ) -> tuple[httpx.Response, Failure | None]:
        """Make ``request`` with the session token; on a 401 log in again and retry once."""
        token = session_token(self._cache_key, self._login)
        response = self._exchange(operation, subject, request, token)
        failure = wire.classify(response.status_code, response.headers, response.content)
        if failure is None or failure.kind is not FailureKind.SESSION_REJECTED:
            return response, failure
        forget_token(self._cache_key, token)
        token = session_token(self._cache_key, self._login)
        response = self._exchange(operation, subject, request, token)
        failure = wire.classify(response.status_code, response.headers, response.content)
        if failure is not None and failure.kind is FailureKind.SESSION_REJECTED:
            forget_token(self._cache_key, token)
            logger.warning(
                "heeros %s %s tt=%s la=%s: session refused again after a new login",
                operation,
                subject,
                self._office_code,
                self._customer_code,
            )
            raise LoginError(MESSAGE_LOGIN_FAILED)
        return response, failure

    def _login(self) -> LoginSession:
        request = wire.login_request(self._identity, self._key.get_secret_value())
        response = self._exchange("login", f"identity={self._identity}", request, None)
        failure = wire.classify(response.status_code, response.headers, response.content)
        if failure is None:
            login = wire.parse_login(response.content)
            if login is None:
                raise HeerosUnavailable(
                    "Heeros answered the login without a usable token", at_login=True
                )
            return login
        if failure.kind is FailureKind.UNAVAILABLE:
            raise HeerosUnavailable(
                f"Heeros answered the login HTTP {failure.status_code}",
                status_code=failure.status_code,
                at_login=True,
            )
        if failure.kind is FailureKind.RATE_LIMITED:
            raise HeerosRateLimited(failure.retry_after, at_login=True)
        logger.warning(
            "heeros login identity=%s refused: HTTP %d %s: %s",
            self._identity,
            failure.status_code,
            self._scrub(failure.code),
            self._scrub(failure.message),
        )
        raise LoginError(MESSAGE_LOGIN_FAILED)

    # One HTTP exchange -----------------------------------------------------------------

    def _exchange(
        self, operation: str, subject: str, request: WireRequest, token: str | None
    ) -> httpx.Response:
        headers = request.headers
        if token is not None:
            headers = {**headers, **wire.auth_headers(token)}
        started = time.perf_counter()
        try:
            response = self._http.request(
                request.method,
                self._base_url + request.path,
                params=request.params,
                headers=headers,
                content=request.content,
            )
        except httpx.HTTPError as exc:
            elapsed_ms = (time.perf_counter() - started) * 1000
            detail = self._scrub(str(exc))
            reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
            logger.warning(
                "heeros %s %s tt=%s la=%s failed after %.0f ms: %s",
                operation,
                subject,
                self._office_code,
                self._customer_code,
                elapsed_ms,
                reason,
            )
            raise HeerosUnavailable(f"Heeros could not be reached ({reason})") from exc
        except httpx.InvalidURL as exc:
            raise ConfigError(f"Heeros base URL {self._base_url!r} is not usable") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.log(
            logging.DEBUG if operation == "status" else logging.INFO,
            "heeros %s %s tt=%s la=%s http=%d %.0f ms",
            operation,
            subject,
            self._office_code,
            self._customer_code,
            response.status_code,
            elapsed_ms,
        )
        return response

    # Answers to errors -----------------------------------------------------------------

    def _duplicate(self, invoice_number: str, failure: Failure) -> str:
        invoice_id = failure.invoice_id
        if invoice_id is None:
            # Heeros said "already there" without the id: look it up by invoice number.
            found = self.find(invoice_number)
            if found is None:
                raise HeerosRefusedError(self._scrub(failure.code), self._scrub(failure.message))
            invoice_id = found.invoice_id
        logger.info(
            "heeros send invoice=%s tt=%s la=%s: already in Heeros as id=%s",
            invoice_number,
            self._office_code,
            self._customer_code,
            self._scrub(invoice_id),
        )
        return invoice_id

    def _error(self, failure: Failure) -> ExportError:
        """The exception for a failure that needs no call-specific handling."""
        code = self._scrub(failure.code)
        message = self._scrub(failure.message)
        if failure.kind is FailureKind.RATE_LIMITED:
            return HeerosRateLimited(failure.retry_after)
        if failure.kind is FailureKind.UNAVAILABLE:
            return HeerosUnavailable(
                f"Heeros answered HTTP {failure.status_code}: {code}: {message}",
                status_code=failure.status_code,
            )
        if failure.kind is FailureKind.SESSION_REJECTED:
            return LoginError(MESSAGE_LOGIN_FAILED)
        return HeerosRefusedError(code, message)

    def _scrub(self, text: str) -> str:
        """``text`` with the client key cut out: Heeros might echo it back."""
        key = self._key.get_secret_value()
        return text.replace(key, _REDACTED) if key in text else text

    def _scrub_status(self, status: RemoteStatus) -> RemoteStatus:
        if status.error_code is None and status.error_message is None:
            return status
        return replace(
            status,
            error_code=None if status.error_code is None else self._scrub(status.error_code),
            error_message=(
                None if status.error_message is None else self._scrub(status.error_message)
            ),
        )


__all__ = ["POOL_LIMITS", "HeerosClient"]
