"""Fixtures for the provider tests: a provider subprocess per test, an HTTP client, a deployer.

The ``provider`` fixture also checks, when the test is over, that the provider stopped cleanly
on SIGTERM (exit code 0) and logged nothing unexpected (tracebacks, failed reconciles). Two
checks the test modules share live here too: :func:`assert_clean_log` and
:func:`ready_endpoints` (what the provider published in ``faas_endpoints``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from faasbus.bus import Bus, Endpoint, names
from tests.provider.helpers import Functions, ProviderProcess


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


# Events that mean the provider hit something it did not expect.
_UNEXPECTED = ("Traceback", "reconcile_failed", "resync_failed", "replica_run_failed",
               "store_watch_restart", "replica_supervisor_failed")  # fmt: skip


def assert_clean_log(process: ProviderProcess) -> None:
    text = process.log_text
    found = [word for word in _UNEXPECTED if word in text]
    assert not found, f"provider logged {found}:\n{text[-4000:]}"


async def ready_endpoints(bus: Bus, name: str) -> list[Endpoint]:
    """The ready replicas of function ``name`` (default namespace) in ``faas_endpoints`` now."""
    kv = await bus.js.key_value(names.ENDPOINTS_BUCKET)
    found: list[Endpoint] = []
    watcher = await kv.watch(f"{names.DEFAULT_NAMESPACE}.{name}.*", ignore_deletes=True)
    try:
        async for entry in watcher:
            if entry is None:
                break
            if entry.value and entry.operation not in ("DEL", "PURGE"):
                endpoint = Endpoint.from_json(entry.value)
                if endpoint.ready:
                    found.append(endpoint)
    finally:
        await watcher.stop()
    return found


@pytest.fixture
def provider(nats_url: str, state_dir: Path) -> Iterator[ProviderProcess]:
    running = ProviderProcess(nats_url, state_dir).start()
    try:
        yield running
    finally:
        code = running.stop()
        assert code == 0, f"provider exited {code} after SIGTERM:\n{running.log_text[-6000:]}"
        assert_clean_log(running)


@pytest.fixture
def provider_factory(nats_url: str) -> Iterator[Any]:
    """Start providers with extra environment; all are stopped at the end."""
    started: list[ProviderProcess] = []

    def start(state: Path, **extra_env: str) -> ProviderProcess:
        process = ProviderProcess(nats_url, state, extra_env).start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


@pytest.fixture
async def functions(
    http: aiohttp.ClientSession, provider: ProviderProcess
) -> AsyncIterator[Functions]:
    helper = Functions(http, provider)
    try:
        yield helper
    finally:
        await helper.cleanup()
