"""``create_app(settings)``: the provider's routes, middlewares and resources wired in one place.

Resources start in order in one ``cleanup_ctx`` (bus connection and declaration, the HTTP client
for health checks and proxying, cgroup detection, the supervisor — which sweeps orphans, loads the
store and starts reconciling) and stop in reverse: replicas are stopped gracefully before the bus
connection closes, so their endpoint records are withdrawn.

Errors of the provider taxonomy (:mod:`faasbus.provider.errors`) and :class:`WireError` become
plain-text responses with their status here; an unreachable bus is a ``503``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from faasbus.bus import BusUnavailable, connect, declare_bus, names
from faasbus.provider import proxy, routes_functions, routes_system
from faasbus.provider.auth import Credentials, basic_auth_middleware
from faasbus.provider.errors import ProviderError
from faasbus.provider.limits import CgroupLimiter, Spawner
from faasbus.provider.namespaces import NamespaceStore
from faasbus.provider.pidrecords import PidRecords
from faasbus.provider.replica import ReplicaContext
from faasbus.provider.secrets import SecretStore
from faasbus.provider.services import SERVICES, SETTINGS, Services, text_error
from faasbus.provider.settings import ProviderSettings
from faasbus.provider.store import FunctionStore
from faasbus.provider.supervisor import Supervisor
from faasbus.provider.types import WireError

__all__ = ["create_app"]

log = structlog.get_logger(__name__)

_MAX_BODY_BYTES = 64 * 1024 * 1024


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except WireError as exc:
        raise text_error(web.HTTPBadRequest, str(exc)) from None
    except ProviderError as exc:
        error = {400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict}.get(
            exc.status, web.HTTPInternalServerError
        )
        raise text_error(error, str(exc)) from None
    except BusUnavailable as exc:
        raise text_error(web.HTTPServiceUnavailable, f"the bus is unavailable: {exc}") from None


def _resources(
    settings: ProviderSettings, environ: Mapping[str, str]
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        state = settings.state_dir
        state.mkdir(parents=True, exist_ok=True)
        bus = await connect(settings.bus, name=f"faasbus-provider-{socket.gethostname()}")
        try:
            await declare_bus(bus.js, settings.bus)
            functions_kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
            endpoints_kv = await bus.js.key_value(names.ENDPOINTS_BUCKET)
            # Replicas are on loopback; one pooled client serves health checks and the proxy.
            http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
                auto_decompress=False,
            )
            cgroups = CgroupLimiter.detect(settings.cgroup_root)
            spawner = Spawner.detect()
            log.info("limits_mechanism", mechanism=cgroups.mechanism,
                     cgroup_root=str(cgroups.root or ""), setpriv=spawner.setpriv)  # fmt: skip
            context = ReplicaContext(
                settings=settings,
                nc=bus.nc,
                endpoints=endpoints_kv,
                http=http,
                cgroups=cgroups,
                spawner=spawner,
                pids=PidRecords(state / "run" / "replicas"),
                provider_id=f"{socket.gethostname()}:{os.getpid()}",
            )
            store = FunctionStore(bus.js, functions_kv)
            secrets = SecretStore(state / "secrets")
            supervisor = Supervisor(context, store, secrets, environ)
            app[SERVICES] = Services(
                bus=bus,
                store=store,
                secrets=secrets,
                namespaces=NamespaceStore(state / "namespaces.json"),
                supervisor=supervisor,
                http=http,
                cgroups=cgroups,
            )
            try:
                await supervisor.start()
                yield
            finally:
                await supervisor.close()
                await http.close()
        finally:
            await bus.close()

    return resources


def create_app(
    settings: ProviderSettings, environ: Mapping[str, str] | None = None
) -> web.Application:
    """The provider application; ``environ`` is what replicas inherit PATH, HOME, ... from."""
    middlewares: list[Middleware] = [error_middleware]
    if settings.basic_auth:
        middlewares.insert(0, basic_auth_middleware(Credentials.load(settings.auth_dir)))
    app = web.Application(middlewares=middlewares, client_max_size=_MAX_BODY_BYTES)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources(settings, os.environ if environ is None else environ))
    app.add_routes(routes_system.routes)
    app.add_routes(routes_functions.routes)
    app.add_routes(proxy.routes)
    return app
