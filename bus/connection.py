"""Connecting to NATS: bus settings, a retrying connect, and the :class:`Bus` handle.

Every faasbus process talks to the bus through one :class:`Bus` (a NATS connection plus its
JetStream context), opened with :func:`connect` and closed once, idempotently. The first connect
is retried with backoff for ``connect_wait_s`` because components start in any order (``faasbus up``
starts the server first, Kubernetes does not promise an order); after that nats-py reconnects
forever and publishes fail fast with :class:`BusUnavailable` while the server is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

import nats
import nats.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from faasbus.bus.errors import BusUnavailable
from faasbus.bus.settings import Env

__all__ = ["Bus", "BusSettings", "connect"]

log = structlog.get_logger(__name__)

_DAY_S = 86_400.0


@dataclass(frozen=True)
class BusSettings:
    """Where the bus is and how its streams and buckets are sized.

    nats_url            FAASBUS_NATS_URL            nats://127.0.0.1:4222 (comma list for a cluster)
    connect_wait_s      FAASBUS_NATS_CONNECT_WAIT   30s: how long the first connect is retried
    replicas            FAASBUS_STREAM_REPLICAS     1 (3 on a JetStream cluster)
    dedupe_window_s     FAASBUS_DEDUPE_WINDOW       10m: FAAS_INVOKE duplicate window (>= 10 min)
    invoke_max_age_s    FAASBUS_INVOKE_MAX_AGE      7 days: an invocation nobody consumed expires
    dlq_max_age_s       FAASBUS_DLQ_MAX_AGE         14 days
    logs_max_age_s      FAASBUS_LOGS_MAX_AGE        3 days
    logs_max_bytes      FAASBUS_LOGS_MAX_BYTES      256 MiB
    calls_ttl_s         FAASBUS_CALLS_TTL           7 days: call records and stored payloads
    endpoint_ttl_s      FAASBUS_ENDPOINT_TTL        15s: an endpoint not refreshed in time vanishes
    """

    nats_url: str = "nats://127.0.0.1:4222"
    connect_wait_s: float = 30.0
    replicas: int = 1
    dedupe_window_s: float = 600.0
    invoke_max_age_s: float = 7 * _DAY_S
    dlq_max_age_s: float = 14 * _DAY_S
    logs_max_age_s: float = 3 * _DAY_S
    logs_max_bytes: int = 256 * 1024 * 1024
    calls_ttl_s: float = 7 * _DAY_S
    endpoint_ttl_s: float = 15.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        env = Env(environ)
        defaults = cls()
        return cls(
            nats_url=env.text("FAASBUS_NATS_URL", defaults.nats_url),
            connect_wait_s=env.duration("FAASBUS_NATS_CONNECT_WAIT", defaults.connect_wait_s),
            replicas=env.integer("FAASBUS_STREAM_REPLICAS", defaults.replicas, minimum=1),
            dedupe_window_s=env.duration("FAASBUS_DEDUPE_WINDOW", defaults.dedupe_window_s),
            invoke_max_age_s=env.duration("FAASBUS_INVOKE_MAX_AGE", defaults.invoke_max_age_s),
            dlq_max_age_s=env.duration("FAASBUS_DLQ_MAX_AGE", defaults.dlq_max_age_s),
            logs_max_age_s=env.duration("FAASBUS_LOGS_MAX_AGE", defaults.logs_max_age_s),
            logs_max_bytes=env.integer(
                "FAASBUS_LOGS_MAX_BYTES", defaults.logs_max_bytes, minimum=1
            ),
            calls_ttl_s=env.duration("FAASBUS_CALLS_TTL", defaults.calls_ttl_s),
            endpoint_ttl_s=env.duration("FAASBUS_ENDPOINT_TTL", defaults.endpoint_ttl_s),
        )

    @property
    def servers(self) -> list[str]:
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]


class Bus:
    """A NATS connection and its JetStream context; ``close()`` is idempotent."""

    def __init__(self, nc: NatsClient, settings: BusSettings) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.settings = settings

    @property
    def max_payload(self) -> int:
        return self.nc.max_payload

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    async def close(self) -> None:
        """Flush what was published (bounded), then close.

        Not nats-py's ``drain()``: it waits for every subscription's queue to empty, and a queue
        nobody reads (a KV watch cancelled while it was being set up, at a stop right after a
        start) never does, so a stop took the whole drain timeout and, cancelled, logged a
        traceback. Everything that must not be lost here is acknowledged before the service
        stops (JetStream publishes and KV writes are awaited, pulled messages acked or left for
        redelivery), so what is left to do is flush the outgoing buffer.
        """
        if self.nc.is_closed:
            return
        with contextlib.suppress(TimeoutError, nats.errors.Error, OSError):
            await asyncio.wait_for(self.nc.flush(), 5.0)
        await self.nc.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def connect(settings: BusSettings, *, name: str) -> Bus:
    """Connect, retrying the first attempt with backoff for ``settings.connect_wait_s``."""
    bound = log.bind(nats_url=settings.nats_url, client=name)

    async def on_error(exc: Exception) -> None:
        bound.debug("nats_error", error=str(exc))

    async def on_disconnected() -> None:
        bound.warning("nats_disconnected")

    async def on_reconnected() -> None:
        bound.info("nats_reconnected")

    deadline = time.monotonic() + settings.connect_wait_s
    delay = 0.1
    while True:
        try:
            nc = await nats.connect(
                servers=settings.servers,
                name=name,
                connect_timeout=2,
                # nats-py retries a failed first connect itself (60 times by default, forever
                # with -1); our loop bounds it instead, then reconnecting is switched on for good.
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            )
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            if time.monotonic() + delay > deadline:
                raise BusUnavailable(
                    f"cannot connect to NATS at {settings.nats_url}: {exc}", url=settings.nats_url
                ) from exc
            bound.info("nats_connect_retry", error=str(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            nc.options["allow_reconnect"] = True
            nc.options["max_reconnect_attempts"] = -1
            nc.options["reconnect_time_wait"] = 0.5
            bound.debug("nats_connected")
            return Bus(nc, settings)
