"""Fixtures for queue worker tests (helpers live in helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from aiohttp import web

from tests.queue_worker.helpers import Callbacks, Handler, Worker, serve


@pytest.fixture
def start_worker(nats_url: str) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(url: str | None = None, **env: str) -> Worker:
        worker = Worker(url or nats_url, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
        if worker.process.stdout is not None:
            worker.process.stdout.close()


@pytest.fixture
async def servers() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        runner, url = await serve(handler)
        runners.append(runner)
        return url

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def callbacks(
    servers: Callable[[Handler], Awaitable[str]],
) -> tuple[Callbacks, str]:
    collected = Callbacks()

    async def receive(request: web.Request) -> web.Response:
        collected.received.append((dict(request.headers), await request.read()))
        collected.arrived.set()
        return web.Response(status=202)

    url = await servers(receive)
    return collected, url + "/callback"
