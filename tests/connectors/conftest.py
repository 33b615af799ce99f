"""Fixtures for connector tests: one queue worker per module, functions, connector processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from faasbus.bus import Bus
from tests.connectors.helpers import ConnectorProcess, Functions
from tests.queue_worker.helpers import Worker

StartConnector = Callable[..., Awaitable[ConnectorProcess]]


@pytest.fixture(scope="module")
def worker(nats_url: str) -> Iterator[Worker]:
    """A real queue worker on the session bus, shared by a module's tests (it serves every
    function; tests isolate by unique function names)."""
    started = Worker(nats_url, max_inflight="50")
    yield started
    started.kill()
    if started.process.stdout is not None:
        started.process.stdout.close()


@pytest.fixture
async def functions(bus: Bus) -> AsyncIterator[Functions]:
    async with Functions(bus) as deployed:
        yield deployed


@pytest.fixture
async def start_connector(nats_url: str, tmp_path: Path) -> AsyncIterator[StartConnector]:
    """Start ``python -m faasbus.connectors.<name>`` processes; all are killed at teardown."""
    started: list[ConnectorProcess] = []

    async def start(name: str, *, url: str | None = None, **env: str) -> ConnectorProcess:
        log_path = tmp_path / f"{name}-connector-{len(started)}.log"
        connector = await ConnectorProcess.start(name, url or nats_url, log_path, **env)
        started.append(connector)
        return connector

    yield start
    for connector in started:
        await connector.kill()
