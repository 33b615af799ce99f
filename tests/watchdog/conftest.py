"""Fixtures for the watchdog tests: real watchdog processes and a real HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.watchdog.helpers import WatchdogFactory


@pytest.fixture
def watchdogs(tmp_path: Path) -> Iterator[WatchdogFactory]:
    """Start watchdogs with ``watchdogs.start(env)``; all are killed by pid at the end."""
    factory = WatchdogFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that adds no headers of its own, so header tests see only what they send."""
    async with aiohttp.ClientSession(
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:
        yield session
