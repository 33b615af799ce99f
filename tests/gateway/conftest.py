"""Fixtures for the gateway tests: a real gateway server, real replicas, a provider, a responder.

The gateway runs in-process on a real socket (pytest-aiohttp's ``aiohttp_server`` with the same
runner options as ``python -m faasbus.gateway``), connected to the session's real nats-server.
Replicas are real aiohttp servers or real watchdog processes registered in ``faas_endpoints``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from nats.js.kv import KeyValue

from faasbus.bus import Bus, Endpoint, names, put_endpoint
from faasbus.gateway import GatewaySettings, create_app, runner_options
from tests.gateway.helpers import (
    Gateway,
    ProviderApp,
    ReplicaControl,
    ScaleUpResponder,
    Watchdogs,
    replica_app,
)

AiohttpServer = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def kv(bus: Bus) -> KeyValue:
    return await bus.js.key_value(names.ENDPOINTS_BUCKET)


@pytest.fixture
async def provider(aiohttp_server: AiohttpServer) -> ProviderApp:
    fake = ProviderApp()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def upstream_client() -> str:
    """Which client carries replica calls; test modules about the fast path run both."""
    return "pool"


@pytest.fixture
async def make_gateway(
    bus: Bus, aiohttp_server: AiohttpServer, provider: ProviderApp, upstream_client: str
) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """``await make_gateway(**settings_overrides)`` → a gateway on a real socket.

    The gateways are closed here, before ``bus`` is: their watches must stop while the
    connection is still open (aiohttp_server would close them only after the bus is gone).
    """
    made: list[TestServer] = []

    async def make(**overrides: Any) -> Gateway:
        values: dict[str, Any] = {
            "port": 0,
            "functions_provider_url": provider.url,
            "scale_from_zero_wait_s": 20.0,
            "health_cache_s": 0.0,
            "bus": bus.settings,
            "upstream_client": upstream_client,
        }
        values.update(overrides)
        settings = GatewaySettings(**values)
        server = await aiohttp_server(create_app(settings, bus=bus), **runner_options(settings))
        made.append(server)
        return Gateway(server, settings)

    yield make
    for server in made:
        await server.close()


@pytest.fixture
async def gateway(make_gateway: Callable[..., Awaitable[Gateway]]) -> Gateway:
    return await make_gateway()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that adds no headers of its own and decodes nothing."""
    async with aiohttp.ClientSession(
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=60),
    ) as session:
        yield session


@pytest.fixture
def start_replica(
    aiohttp_server: AiohttpServer, kv: KeyValue
) -> Callable[..., Awaitable[tuple[ReplicaControl, Endpoint]]]:
    """``await start_replica(function, namespace=...)`` → a real aiohttp replica, registered."""
    count = 0

    async def start(
        function: str, namespace: str = names.DEFAULT_NAMESPACE
    ) -> tuple[ReplicaControl, Endpoint]:
        nonlocal count
        count += 1
        control = ReplicaControl(name=f"r{count}")
        server = await aiohttp_server(replica_app(control))
        endpoint = Endpoint(
            namespace=namespace,
            function=function,
            instance=control.name,
            url=str(server.make_url("")).rstrip("/"),
            ready=True,
            provider="test",
            started_at=time.time(),
        )
        await put_endpoint(kv, endpoint)
        return control, endpoint

    return start


@pytest.fixture
async def watchdogs(tmp_path: Path) -> AsyncIterator[Watchdogs]:
    started = Watchdogs(tmp_path)
    try:
        yield started
    finally:
        await started.stop_all()


@pytest.fixture
async def responder(bus: Bus) -> AsyncIterator[ScaleUpResponder]:
    scale_up = ScaleUpResponder(bus)
    await scale_up.start()
    try:
        yield scale_up
    finally:
        await scale_up.stop()


# The async path's tests reuse the queue worker's fixtures (worker processes, servers, callbacks).
from tests.queue_worker.conftest import callbacks, servers, start_worker  # noqa: E402, F401
