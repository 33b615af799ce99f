"""The watchdog's HTTP face: health, readiness, the concurrency limit and the lock file.

Two platform routes, ``GET /_/health`` and ``GET /_/ready``; every other path is the function's.
The function route is kept lean on purpose (no router, no middleware, no per-request log): python
mode is measured against a bare aiohttp server and must stay within 70% of it.

Health follows the OpenFaaS watchdogs: ``200`` once the function is ready and the lock file
exists (or ``suppress_lock``), ``503`` before that and after SIGTERM. ``/_/ready`` says the same
and also ``429`` while ``max_inflight`` calls run; with ``ready_path`` set it calls the function
with ``GET <ready_path>`` and answers what the function answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from faasbus.watchdog.base import INTERNAL_HEADER, INTERNAL_VALUE, FunctionRuntime
from faasbus.watchdog.config import WatchdogConfig

__all__ = ["LockFile", "ServerState", "create_server"]

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class ServerState:
    """What health and the limiter look at; mutated only on the event loop."""

    max_inflight: int = 0
    suppress_lock: bool = False
    lock_file: Path | None = None
    ready: bool = False
    accepting: bool = True
    inflight: int = 0

    def healthy(self) -> bool:
        if not (self.ready and self.accepting):
            return False
        return self.suppress_lock or self.lock_file is None or self.lock_file.exists()

    def saturated(self) -> bool:
        return 0 < self.max_inflight <= self.inflight


_PLATFORM_METHODS = frozenset({"GET", "HEAD"})


class LockFile:
    """The OpenFaaS lock file: present while this replica accepts work."""

    def __init__(self, path: Path, *, suppressed: bool) -> None:
        self.path = path
        self.suppressed = suppressed

    def create(self) -> None:
        if not self.suppressed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"")

    def remove(self) -> None:
        if not self.suppressed:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _too_many() -> web.Response:
    return web.Response(
        status=429,
        text="Concurrent request limit exceeded. Max concurrent requests: see max_inflight\n",
        headers={INTERNAL_HEADER: INTERNAL_VALUE},
    )


def _unavailable() -> web.Response:
    return web.Response(status=503, text="Service Unavailable\n")


def _function_route(state: ServerState, handle: Handler) -> Handler:
    limit = state.max_inflight

    if limit > 0:

        async def limited(request: web.BaseRequest) -> web.StreamResponse:
            if state.inflight >= limit:
                return _too_many()
            state.inflight += 1
            try:
                return await handle(request)
            finally:
                state.inflight -= 1

        return limited

    async def unlimited(request: web.BaseRequest) -> web.StreamResponse:
        state.inflight += 1
        try:
            return await handle(request)
        finally:
            state.inflight -= 1

    return unlimited


def _platform_routes(state: ServerState, handle: Handler, ready_path: str) -> dict[str, Handler]:
    async def health(request: web.BaseRequest) -> web.StreamResponse:
        del request
        return web.Response(text="OK") if state.healthy() else _unavailable()

    async def ready(request: web.BaseRequest) -> web.StreamResponse:
        if not state.healthy():
            return _unavailable()
        if state.saturated():
            return _too_many()
        if ready_path:
            return await handle(request.clone(method="GET", rel_url=ready_path))
        return web.Response(text="OK")

    return {"/_/health": health, "/_/ready": ready}


def create_server(
    config: WatchdogConfig, runtime: FunctionRuntime, state: ServerState
) -> web.Server:
    """The watchdog's HTTP server: ``/_/health`` and ``/_/ready``, then the function.

    This is aiohttp's low-level ``web.Server`` with one dispatch function rather than an
    ``Application`` and its router: with three routes, one of them a catch-all, the router and
    the application's handler chain cost ~10% of a python-mode call (docs/benchmarks.md).
    """
    platform = _platform_routes(state, runtime.handle, config.ready_path)
    function = _function_route(state, runtime.handle)
    loop = asyncio.get_running_loop()
    max_size = config.max_body_bytes

    async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
        if request.raw_path.startswith("/_/"):
            route = platform.get(request.path)
            if route is not None:
                if request.method not in _PLATFORM_METHODS:
                    raise web.HTTPMethodNotAllowed(request.method, sorted(_PLATFORM_METHODS))
                return await route(request)
        return await function(request)

    def make_request(
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        return web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=max_size
        )

    return web.Server(dispatch, request_factory=make_request, access_log=None)
