"""Running the gateway: the app on a TCP site, and the process's ``main()``.

:class:`GatewayServer` is an async context manager (app runner + TCP site) used by ``main`` and by
tests that want the real server on a real socket. ``main`` owns the process: settings from the
environment, structlog, SIGTERM/SIGINT → stop, and the one stdout line
``faasbus-gateway listening on HOST:PORT`` once requests are accepted (port 0 picks a free port;
supervisors and tests learn it from that line). On stop, intake ends first, in-flight requests get
``shutdown_timeout_s`` to finish, then the endpoint table, sessions and bus close.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Self

import structlog
from aiohttp import web

from faasbus.bus import Bus, BusError, SettingsError, configure_logging
from faasbus.gateway.app import create_app, runner_options
from faasbus.gateway.errors import GatewayError
from faasbus.gateway.settings import GatewaySettings

__all__ = ["GatewayServer", "main", "serve"]

log = structlog.get_logger(__name__)


class GatewayServer:
    """The gateway listening on ``settings.listen_host:settings.port``; ``port`` once started."""

    def __init__(self, settings: GatewaySettings, *, bus: Bus | None = None) -> None:
        self.settings = settings
        self.app = create_app(settings, bus=bus)
        self._runner = web.AppRunner(
            self.app, handler_cancellation=True, **runner_options(settings)
        )
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.settings.listen_host}:{self.port}"

    async def __aenter__(self) -> Self:
        await self._runner.setup()
        try:
            site = web.TCPSite(
                self._runner,
                self.settings.listen_host,
                self.settings.port,
                backlog=1024,
                reuse_address=True,
            )
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        address = self._runner.addresses[0]
        self.port = int(address[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()


async def serve(settings: GatewaySettings) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with GatewayServer(settings) as server:
            # stdout carries only this line; logs go to stderr.
            sys.stdout.write(f"faasbus-gateway listening on {settings.listen_host}:{server.port}\n")
            sys.stdout.flush()
            log.info(
                "gateway_started",
                url=server.url,
                provider=settings.functions_provider_url,
                basic_auth=settings.basic_auth,
                scale_from_zero=settings.scale_from_zero,
            )
            await stop.wait()
            log.info("gateway_stopping")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("gateway_stopped")


def main() -> None:
    try:
        settings = GatewaySettings.from_env(os.environ)
    except SettingsError as exc:
        sys.stderr.write(f"faasbus-gateway: {exc}\n")
        raise SystemExit(2) from None
    configure_logging("gateway")
    try:
        asyncio.run(serve(settings))
    except (GatewayError, BusError, OSError) as exc:
        log.error("gateway_failed", error=str(exc))  # noqa: TRY400 - one line, no traceback
        raise SystemExit(1) from None
