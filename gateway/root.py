"""The routes at the root: ``/healthz``, ``/metrics``, ``/`` and the ``/ui/`` placeholder.

``/healthz`` answers ``200`` only when the gateway can do its job: the bus connection is up and the
provider answers its own ``/healthz``. The provider's answer is reused for ``health_cache_s`` so a
busy prober (Kubernetes, a load balancer) does not turn into provider load. It needs no
credentials (faas-cli and probes call it anonymously). ``/metrics`` is open too, as in OpenFaaS.
"""

from __future__ import annotations

import time

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from faasbus.bus import Bus
from faasbus.gateway.auth import BasicAuth
from faasbus.gateway.metrics import GatewayMetrics
from faasbus.gateway.settings import GatewaySettings

__all__ = ["Health", "root_routes"]

_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2.0)

_UI_PAGE = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>faasbus</title></head>
<body>
<h1>faasbus</h1>
<p>The portal is not built yet. The OpenFaaS API is served here: try
<code>faasbus list</code> or <code>faas-cli list</code>.</p>
</body>
</html>
"""


class Health:
    """``/healthz``; ``bus`` and ``session`` are attached at app start-up."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._url = settings.functions_provider_url + "/healthz"
        self._cache_s = settings.health_cache_s
        self._checked_at = float("-inf")
        self._provider_ok = False
        self.bus: Bus | None = None
        self.session: aiohttp.ClientSession | None = None

    async def _provider_healthy(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at < self._cache_s:
            return self._provider_ok
        session = self.session
        if session is None:
            raise RuntimeError("the gateway app has not started")
        try:
            async with session.get(self._url, timeout=_PROBE_TIMEOUT) as response:
                await response.read()
                healthy = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            healthy = False
        self._checked_at, self._provider_ok = time.monotonic(), healthy
        return healthy

    async def handle(self, _request: web.Request) -> web.Response:
        bus_ok = self.bus is not None and self.bus.connected
        provider_ok = await self._provider_healthy()
        if bus_ok and provider_ok:
            return web.Response(text="OK")
        checks = (("bus not connected", bus_ok), ("provider not healthy", provider_ok))
        problems = [problem for problem, ok in checks if not ok]
        raise web.HTTPServiceUnavailable(text="; ".join(problems) + "\n")


def root_routes(health: Health, metrics: GatewayMetrics, auth: BasicAuth) -> list[web.RouteDef]:
    """``/healthz`` and ``/metrics`` open; ``/ui/`` behind basic auth when it is on."""

    async def render_metrics(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def to_ui(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("/ui/")

    async def ui(_request: web.Request) -> web.Response:
        return web.Response(body=_UI_PAGE, content_type="text/html", charset="utf-8")

    return [
        web.get("/healthz", health.handle),
        web.get("/metrics", render_metrics),
        web.get("/", to_ui),
        web.get("/ui", auth.guard(to_ui)),
        web.get("/ui/", auth.guard(ui)),
    ]
