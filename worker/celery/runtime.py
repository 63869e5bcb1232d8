"""What one worker process holds for its tasks: settings, store, exports, Heeros clients.

Built once per process, on first use (after the pool has forked), from the
settings the app was created with. Each thread gets its own Heeros client per
tenant, so a request never waits for another thread's connection and no
connection pool is shared between threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

import httpx
from kombu import Connection

from worker.celery.broker import transport_for
from worker.celery.queues import TIMEOUTS, message_counts
from worker.config import Export, ExportConfig, load_export_config
from worker.config.settings import Settings
from worker.errors import ConfigError
from worker.heeros.client import HeerosClient
from worker.heeros.remote import Heeros
from worker.logs import register_secret
from worker.pipeline import Target, Timing
from worker.state.leases import Leases, worker_id
from worker.state.limiter import LimitedHeeros, Limits, TenantLimiter
from worker.state.metrics import Metrics
from worker.state.store import StatusStore, open_store


class Runtime:
    """The per-process state tasks share; the tasks themselves stay thin.

    Everything is built from ``settings`` when first used, except what is given: the
    export ``config``, the status ``store``, and the HTTP ``transport`` under every
    Heeros client (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        config: ExportConfig | None = None,
        store: StatusStore | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._config = config
        self._store = store
        self._transport = transport
        self._local = threading.local()
        self._lock = threading.Lock()
        self._poll_pool: ThreadPoolExecutor | None = None

    @cached_property
    def store(self) -> StatusStore:
        return self._store if self._store is not None else open_store(self.settings)

    @property
    def config(self) -> ExportConfig:
        if self._config is None:
            with self._lock:
                if self._config is None:
                    if self.settings.export_config is None:
                        raise ConfigError(
                            "no export configuration: set HEEROS_EXPORT_CONFIG to its file"
                        )
                    self._config = load_export_config(self.settings.export_config)
        return self._config

    @property
    def poll_pool(self) -> ThreadPoolExecutor:
        """The threads the poll tasks' status requests go out on."""
        if self._poll_pool is None:
            with self._lock:
                if self._poll_pool is None:
                    self._poll_pool = ThreadPoolExecutor(
                        max_workers=self.settings.poll_concurrency, thread_name_prefix="heeros-poll"
                    )
        return self._poll_pool

    def broker_connection(self) -> Connection:
        """A new connection to the broker, on the transport the app uses for it."""
        broker = self.settings.broker
        return Connection(broker, transport=transport_for(broker), **TIMEOUTS)

    def queue_length(self, queue: str) -> int:
        """Messages waiting in a Celery queue, asked of the broker (any kombu transport)."""
        with self.broker_connection() as connection:
            return message_counts(connection, [queue])[queue]

    @cached_property
    def worker_id(self) -> str:
        """This process's name in the workers' leases, new at each start."""
        return worker_id()

    @cached_property
    def leases(self) -> Leases:
        return Leases.for_store(self.store)

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics.for_store(self.store, flush_every_s=1.0)

    @cached_property
    def timing(self) -> Timing:
        return Timing(
            poll_first_s=self.settings.poll_first_s,
            poll_max_s=self.settings.poll_max_s,
            confirm_deadline_s=self.settings.confirm_deadline_s,
        )

    @cached_property
    def limiter(self) -> TenantLimiter:
        settings = self.settings
        limits = Limits(
            per_second=settings.tenant_rps,
            concurrent=settings.tenant_concurrency,
            # a fifth of a second's worth at once: workers start together
            burst=max(10, int(settings.tenant_rps / 5)),
            lease_s=settings.connect_timeout_s + settings.read_timeout_s + 5,
        )
        return TenantLimiter.for_store(self.store, limits=limits)

    def resolve(self, export_name: str) -> tuple[Target, Heeros]:
        """The export of that name and this thread's client for its Heeros tenant."""
        export = self.config.export(export_name)
        clients: dict[str, Heeros] | None = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        client = clients.get(export.name)
        if client is None:
            tenant = export.tenant
            client = clients[export.name] = LimitedHeeros(
                self._client(export), self.limiter, tenant
            )
        return export, client

    def _client(self, export: Export) -> HeerosClient:
        key = export.require_client_key()
        register_secret(key.get_secret_value())
        return HeerosClient(
            base_url=self.settings.base_url,
            office_code=export.office_code,
            customer_code=export.customer_code,
            client_identity=export.file_transfer.client_identity,
            client_key=key,
            transport=self._transport,
            connect_timeout=self.settings.connect_timeout_s,
            read_timeout=self.settings.read_timeout_s,
        )


__all__ = ["Runtime"]
