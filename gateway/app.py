"""``create_app``: the one place that wires the gateway's routes and resources.

Route tables, one per family (``/function``, ``/async-function``, ``/system/calls`` and
``/system/dlq``, ``/system``, the root). No application middleware: auth wraps only the handlers
that need it, so the function route runs nothing but its handler.

Resources are paired start/stop contexts (``cleanup_ctx``), in order: the bus connection (unless
one is handed in), the endpoint table watching ``faas_endpoints``, then the HTTP clients (the
lean keep-alive pool and one pooled aiohttp session for replicas, one session for the provider).
They stop in reverse order, and only what started is stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from importlib import metadata
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from faasbus.bus import Bus, CallStore, EndpointTable, FunctionCatalog, connect, declare_bus
from faasbus.gateway.async_path import AsyncPath, AsyncResources, async_routes, calls_routes
from faasbus.gateway.auth import BasicAuth, Credentials
from faasbus.gateway.forwarding import SKIP_AUTO_HEADERS
from faasbus.gateway.metrics import GatewayMetrics
from faasbus.gateway.proxy import FunctionProxy, function_routes
from faasbus.gateway.root import Health, root_routes
from faasbus.gateway.settings import GatewaySettings
from faasbus.gateway.system import SystemForwarder, system_routes
from faasbus.gateway.upstream import ReplicaPool

__all__ = [
    "BUS",
    "METRICS",
    "SETTINGS",
    "TABLE",
    "create_app",
    "faasbus_version",
    "runner_options",
]

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", GatewaySettings)
METRICS = web.AppKey("metrics", GatewayMetrics)
BUS = web.AppKey("bus", Bus)
TABLE = web.AppKey("table", EndpointTable)

# Idle pooled connections to replicas are dropped after this, well before a replica's own
# keep-alive timeout would close them under us.
_KEEPALIVE_S = 30.0


def faasbus_version() -> str:
    try:
        return metadata.version("faasbus")
    except metadata.PackageNotFoundError:
        return "dev"


def runner_options(settings: GatewaySettings) -> Mapping[str, Any]:
    """``AppRunner`` options for the gateway (shared by ``main`` and the tests' server).

    No access log (it would cost more than the proxying), and request bodies left encoded: a gzip
    body is the function's business, passed on with its ``Content-Encoding``.
    """
    return {
        "access_log": None,
        "auto_decompress": False,
        "shutdown_timeout": settings.shutdown_timeout_s,
    }


def _client_session(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=_KEEPALIVE_S),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=SKIP_AUTO_HEADERS,
        timeout=timeout,
        trust_env=False,
        requote_redirect_url=False,
    )


def create_app(settings: GatewaySettings, *, bus: Bus | None = None) -> web.Application:
    """The gateway application. With ``bus`` None it connects (and declares) the bus itself."""
    version = faasbus_version()
    credentials = Credentials.load(settings.secret_mount_path) if settings.basic_auth else None
    auth = BasicAuth(credentials)
    metrics = GatewayMetrics()
    proxy = FunctionProxy(settings, metrics, version)
    system = SystemForwarder(settings, metrics, version)
    health = Health(settings)
    async_path = AsyncPath(
        max_async_body_size=settings.max_async_body_size,
        max_result_bytes=settings.max_result_bytes,
        allow_link_local_callbacks=settings.allow_link_local_callbacks,
        provider_url=settings.functions_provider_url,
        provider_authorization=credentials.header() if credentials else None,
    )

    app = web.Application(client_max_size=settings.max_body_size)
    app[SETTINGS] = settings
    app[METRICS] = metrics

    async def bus_ctx(app: web.Application) -> AsyncIterator[None]:
        if bus is not None:
            app[BUS] = health.bus = bus
            yield
            return
        owned = await connect(settings.bus, name="faasbus-gateway")
        try:
            await declare_bus(owned.js, settings.bus)
            app[BUS] = health.bus = owned
            yield
        finally:
            await owned.close()

    async def table_ctx(app: web.Application) -> AsyncIterator[None]:
        async with EndpointTable(app[BUS]) as table:
            app[TABLE] = proxy.table = table
            metrics.set_services(
                lambda: {key: len(ready) for key, ready in table.snapshot().items()}
            )
            try:
                yield
            finally:
                metrics.set_services(None)

    async def sessions_ctx(_app: web.Application) -> AsyncIterator[None]:
        replicas = _client_session(
            aiohttp.ClientTimeout(total=settings.upstream_timeout_s, sock_connect=10.0)
        )
        provider = _client_session(aiohttp.ClientTimeout(total=None, sock_connect=10.0))
        pool = None
        if settings.upstream_client == "pool":
            pool = ReplicaPool(connect_timeout_s=10.0, idle_timeout_s=_KEEPALIVE_S)
        proxy.session, proxy.pool = replicas, pool
        system.session = health.session = provider
        try:
            yield
        finally:
            if pool is not None:
                pool.close()
            await replicas.close()
            await provider.close()

    async def async_ctx(app: web.Application) -> AsyncIterator[None]:
        bus_, session = app[BUS], system.session
        if session is None:  # sessions_ctx runs first; this would be a wiring mistake
            raise RuntimeError("the provider session is not open")
        async with FunctionCatalog(bus_) as catalog:
            async_path.start(
                AsyncResources(
                    bus=bus_, catalog=catalog, calls=await CallStore.open(bus_.js),
                    session=session,
                )
            )  # fmt: skip
            try:
                yield
            finally:
                async_path.stop()

    app.cleanup_ctx.extend([bus_ctx, table_ctx, sessions_ctx, async_ctx])
    app.router.add_routes(function_routes(proxy))
    app.router.add_routes(async_routes(async_path))
    # Before the /system catch-all that forwards everything else to the provider.
    app.router.add_routes(calls_routes(async_path, auth.guard))
    app.router.add_routes(system_routes(system, auth))
    app.router.add_routes(root_routes(health, metrics, auth))
    log.debug("gateway_app_created", basic_auth=auth.enabled, version=version)
    return app
