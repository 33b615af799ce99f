"""The seam between the HTTP server and the modes, and the request rules every mode shares.

A mode is a `FunctionRuntime`: an async context manager that owns the mode's resources (a warm
process, a client pool, an imported handler), says when it is ready, and turns one request into
one response. The server knows nothing else about it. The helpers here implement the rules that
REFERENCE.md section 5 states once for all modes: the per-call time limit (``exec_timeout``,
shortened by ``X-Timeout``), the response Content-Type, ``X-Duration-Seconds``, and the
``X-OpenFaaS-Internal`` marker on errors the watchdog makes itself. `AsyncResource` is the
start-on-enter, close-on-exit shape the runtimes (and the python mode's deadline wheel) share.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Protocol, Self

from aiohttp import web

from faasbus.watchdog.config import WatchdogConfig, parse_duration

__all__ = [
    "INTERNAL_HEADER",
    "AsyncResource",
    "FunctionRuntime",
    "RuntimeBase",
    "call_timeout_s",
    "format_duration",
    "internal_error",
    "read_body",
    "response_content_type",
]

INTERNAL_HEADER = "X-OpenFaaS-Internal"
INTERNAL_VALUE = "watchdog"


class FunctionRuntime(Protocol):
    """One mode of running a function, as the server sees it."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def wait_ready(self) -> None:
        """Return once calls can be served (``http``: the upstream accepts connections)."""

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Run the function for `request`."""


class AsyncResource:
    """An async context manager that calls `start` on entry and `close` on exit."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Acquire the resources."""

    async def close(self) -> None:
        """Release them; safe to call twice."""


class RuntimeBase(AsyncResource):
    """Defaults for a runtime with nothing to start and nothing to wait for."""

    async def wait_ready(self) -> None:
        """Ready at once."""


def call_timeout_s(config: WatchdogConfig, request: web.BaseRequest) -> float | None:
    """The time limit of this call, or None when there is none.

    ``exec_timeout`` (0 = off) capped by ``write_timeout`` (a response after it could not be
    written), shortened by a valid ``X-Timeout`` header; the header never lengthens it.
    """
    limit = config.write_timeout_s
    if 0 < config.exec_timeout_s < limit:
        limit = config.exec_timeout_s
    header = request.headers.get("X-Timeout")
    if header:
        try:
            asked = parse_duration(header)
        except ValueError:
            asked = 0.0
        if 0 < asked < limit:
            limit = asked
    return limit if limit > 0 else None


def format_duration(seconds: float) -> str:
    """``X-Duration-Seconds`` as the Go watchdogs print it (``%f``): ``0.002885``."""
    return f"{seconds:.6f}"


def internal_error(status: int, text: str) -> web.Response:
    """A response the watchdog made itself, marked so callers can tell it from the function's."""
    return web.Response(
        status=status,
        text=text if text.endswith("\n") else text + "\n",
        headers={INTERNAL_HEADER: INTERNAL_VALUE},
    )


def response_content_type(config: WatchdogConfig, request: web.BaseRequest) -> str | None:
    """``content_type`` if set, else the request's Content-Type, else None."""
    if config.content_type:
        return config.content_type
    return request.headers.get("Content-Type")


async def read_body(request: web.BaseRequest, config: WatchdogConfig) -> bytes:
    """The whole request body, read within ``read_timeout``.

    Raises ``HTTPRequestTimeout`` (408) when the client is too slow and
    ``HTTPRequestEntityTooLarge`` (413) above ``FAASBUS_MAX_BODY_BYTES``.
    """
    if not request.body_exists:
        return b""
    try:
        async with asyncio.timeout(config.read_timeout_s or None):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text="request body not read within read_timeout\n",
            headers={INTERNAL_HEADER: INTERNAL_VALUE},
        ) from None
