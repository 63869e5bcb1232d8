"""The exporter's settings, read from ``HEEROS_*`` environment variables.

Nothing here is built at import time: ``Settings()`` is called by the entry
points (the worker, the command line, the API) and handed on explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

API_TOKEN_MIN_CHARS = 16
"""The shortest API token accepted: a shorter one could be guessed."""

SENTINEL_SCHEME = "redis+sentinel"
"""The scheme of a Redis reached through Redis Sentinel (:class:`SentinelURL`)."""

SENTINEL_FORM = "redis+sentinel://[[username]:password@]host:26379[,host:26379...]/master[/db]"
"""How a Sentinel URL is written."""

SENTINEL_PORT = 26379
"""The port of a sentinel written without one."""


@dataclass(frozen=True)
class SentinelURL:
    """A Redis primary found through Redis Sentinel, written as :data:`SENTINEL_FORM`.

    ``master`` is the name the sentinels monitor the primary under (``sentinel monitor
    <master> ...``), ``db`` the database (0 unless given). The user and password are
    the Redis servers' (``requirepass`` or an ACL user); the sentinels are asked
    without them.
    """

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> SentinelURL | None:
        """The Sentinel address ``url`` gives; None for a URL of any other scheme.

        A malformed Sentinel URL raises :class:`ValueError` saying what is wrong, never
        repeating the password.
        """
        parts = urlsplit(url)
        if parts.scheme.lower() != SENTINEL_SCHEME:
            return None
        if parts.query or parts.fragment:
            raise ValueError("a Sentinel URL takes no parameters after the path")
        credentials, _, hosts = parts.netloc.rpartition("@")
        username, _, password = credentials.partition(":")
        sentinels = tuple(_sentinel(host) for host in hosts.split(","))
        segments = [unquote(segment) for segment in parts.path.split("/")[1:]]
        if segments and not segments[-1]:
            segments.pop()  # a trailing slash
        if not segments or not segments[0] or len(segments) > 2:
            raise ValueError("the path of a Sentinel URL is /master or /master/db")
        if segments[0].isdigit() and len(segments) == 1:
            raise ValueError(
                "the path of a Sentinel URL names the master first (/master/db), "
                f"not only a database ({segments[0]})"
            )
        db = segments[1] if len(segments) == 2 else "0"
        if not db.isdigit():
            raise ValueError(f"the database of a Sentinel URL is a number, not {db!r}")
        return cls(
            sentinels=sentinels,
            master=segments[0],
            db=int(db),
            username=unquote(username) or None,
            password=unquote(password) or None,
        )

    def celery_url(self) -> str:
        """The same address as Celery's broker URL, in kombu's Sentinel form.

        One ``sentinel://host:port`` URL per sentinel, joined by ``;``; the first also
        carries the credentials and ``/master/db``, which the broker's Sentinel
        transport (``worker.celery.broker``) reads there and nowhere else, so that no
        other part repeats the password.
        """
        credentials = ""
        if self.username or self.password:
            credentials = quote(self.username or "", safe="")
            if self.password:
                credentials += ":" + quote(self.password, safe="")
            credentials += "@"
        hosts = [f"{_bracketed(host)}:{port}" for host, port in self.sentinels]
        first = f"sentinel://{credentials}{hosts[0]}/{quote(self.master, safe='')}/{self.db}"
        return ";".join([first, *(f"sentinel://{host}" for host in hosts[1:])])


def _sentinel(text: str) -> tuple[str, int]:
    """One ``host[:port]`` of a Sentinel URL's list."""
    location = urlsplit(f"//{text.strip()}")
    try:
        port = location.port
    except ValueError:
        raise ValueError(f"a sentinel's port is a number from 1 to 65535: {text!r}") from None
    if not location.hostname:
        raise ValueError("a Sentinel URL lists its sentinels as host:port, separated by commas")
    return location.hostname, port or SENTINEL_PORT


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def celery_broker_url(url: str) -> str:
    """``url`` as Celery takes a broker URL: a Sentinel URL in kombu's form, any other as is."""
    address = SentinelURL.parse(url)
    return address.celery_url() if address is not None else url


class Settings(BaseSettings):
    """Every setting of the exporter; the defaults suit a laptop with a local Redis."""

    # A refused value is never repeated in the error: it may be a secret.
    model_config = SettingsConfigDict(
        env_prefix="HEEROS_", extra="ignore", hide_input_in_errors=True
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis for the status store, and the broker unless ``broker_url`` is set; through
    Redis Sentinel when written as :data:`SENTINEL_FORM`."""
    broker_url: str | None = None
    """Celery's broker, when it is not the status store's Redis (a Sentinel URL too)."""
    base_url: str = "https://api.cloud.heeros.com/sales-invoice-service-v1"
    """The Heeros API, or the sandbox (``http://127.0.0.1:8089``)."""
    export_config: Path | None = None
    """The export configuration file (TOML)."""
    key_prefix: str = "hx"
    """The prefix of every status-store key in Redis."""

    confirm_deadline_s: float = Field(600.0, gt=0)
    """How long after sending an invoice Heeros has to confirm it."""
    poll_first_s: float = Field(2.0, gt=0)
    """The first status poll, this long after the send."""
    poll_max_s: float = Field(30.0, gt=0)
    """Polls back off, doubling up to this interval."""
    poll_batch: int = Field(20, ge=1, le=500)
    """How many due invoices one poll task checks."""
    retry_max: int = Field(8, ge=0)
    """Retries of a transient failure (network, 5xx, 429) before the invoice fails."""
    retry_base_s: float = Field(2.0, gt=0)
    """The first retry's delay; it doubles at each retry, with jitter."""
    retry_max_s: float = Field(120.0, gt=0)
    """The longest delay between two retries."""
    visibility_timeout_s: int = Field(1800, ge=60)
    """After this long an unacknowledged task is delivered again (Redis transport): the
    last resort. A dead worker's sends move again after ``recover_after_s``."""
    recover_after_s: float = Field(15.0, ge=3, le=300)
    """A worker that has not beaten for this long is taken for dead, and any live worker
    queues again the sends it held (its lease in the status store)."""
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    """Heeros is slow: its own client waits 15 s."""
    concurrency: int = Field(32, ge=1)
    """Tasks one worker process runs at once (threads): sends and polls wait on Heeros."""
    poll_concurrency: int = Field(64, ge=1)
    """Status requests one worker process has in flight at once, on threads of their own."""
    tenant_rps: float = Field(500.0, ge=0)
    """Requests per second to one Heeros tenant, across all workers (0: no limit)."""
    tenant_concurrency: int = Field(256, ge=0)
    """Requests in flight to one Heeros tenant, across all workers (0: no limit)."""
    dispatch_window: int = Field(200, ge=1, le=100_000)
    """Sends of one tenant's big runs waiting in the broker at once; the rest wait in the
    status store, so that tenants take turns (:mod:`worker.state.windows`)."""
    sweep_after_s: float = Field(0.0, ge=0)
    """An unfinished item untouched this long is queued again (0: visibility timeout + 2 min)."""
    task_events: bool = False
    """Send Celery task events from the start (monitors switch them on when they run)."""
    rabbitmq_queue_type: Literal["quorum", "classic"] = "quorum"
    """The type of the queues the exporter declares on a RabbitMQ broker: ``quorum``
    (replicated, RabbitMQ 3.10 or later), or ``classic`` for a virtual host that already
    holds the exporter's queues as classic queues. Redis brokers ignore it."""
    api_token: SecretStr | None = None
    """The bearer token the producer's HTTP API and dashboard require (16 characters or more);
    blank is the same as unset."""

    @field_validator("api_token")
    @classmethod
    def _long_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None or not token.get_secret_value().strip():
            return None
        length = len(token.get_secret_value().strip())
        if length < API_TOKEN_MIN_CHARS:
            raise ValueError(
                f"HEEROS_API_TOKEN has {length} characters: it needs at least "
                f"{API_TOKEN_MIN_CHARS} characters; make a random one, e.g. "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return token

    @field_validator("redis_url", "broker_url")
    @classmethod
    def _sentinel_form(cls, url: str | None, info: ValidationInfo) -> str | None:
        # A mistake in a Sentinel URL stops the process as it starts, not at its first task.
        if url is None:
            return None
        variable = f"HEEROS_{(info.field_name or '').upper()}"
        try:
            if urlsplit(url).scheme.lower() == "sentinel":
                raise ValueError("kombu's own sentinel:// form is not read here")
            SentinelURL.parse(url)
        except ValueError as error:
            raise ValueError(f"{variable}: {error}; write a Sentinel as {SENTINEL_FORM}") from None
        return url

    @model_validator(mode="after")
    def _within_visibility(self) -> Settings:
        # A countdown longer than the visibility timeout would be delivered twice.
        longest = max(self.poll_max_s, self.retry_max_s, self.poll_first_s)
        if longest * 2 >= self.visibility_timeout_s:
            raise ValueError(
                f"poll and retry intervals (up to {longest:g} s) must stay well below "
                f"visibility_timeout_s ({self.visibility_timeout_s} s)"
            )
        if self.recover_after_s * 2 >= self.visibility_timeout_s:
            raise ValueError(
                f"recover_after_s ({self.recover_after_s:g} s) must stay well below "
                f"visibility_timeout_s ({self.visibility_timeout_s} s): the visibility "
                "timeout is the last resort, the leases the way back"
            )
        if self.confirm_deadline_s >= self.visibility_timeout_s:
            raise ValueError(
                f"confirm_deadline_s ({self.confirm_deadline_s:g} s) must stay below "
                f"visibility_timeout_s ({self.visibility_timeout_s} s)"
            )
        return self

    @property
    def stale_after_s(self) -> float:
        """When an unfinished item no task holds any more is queued again."""
        return self.sweep_after_s or self.visibility_timeout_s + self.retry_max_s + 120

    @property
    def broker(self) -> str:
        """The broker URL Celery uses (a Sentinel URL in kombu's form: ``celery_broker_url``)."""
        return celery_broker_url(self.broker_url or self.redis_url)


__all__ = [
    "API_TOKEN_MIN_CHARS",
    "SENTINEL_FORM",
    "SENTINEL_PORT",
    "SENTINEL_SCHEME",
    "SentinelURL",
    "Settings",
    "celery_broker_url",
]
