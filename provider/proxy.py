"""``/function/{name}[/{path}]``: a plain reverse proxy to a ready replica of this provider.

It is what lets any OpenFaaS gateway front this provider (faas-provider's proxy), and what the
provider's own tests and the cold-start benchmark call. ``name`` may be ``NAME`` or
``NAME.NAMESPACE`` (split at the last dot). The function sees ``/{path}`` and the query string.

- unknown function → ``404``;
- no ready replica → the request is held while one starts (a function at zero is woken as a bus
  scale-up would wake it) for up to the replica start timeout, then ``503``;
- replica unreachable → ``502``, no answer within ``upstream_timeout`` → ``504``; errors made here
  carry ``X-OpenFaaS-Internal: provider`` so callers can tell them from the function's own.

faasbus's gateway does not come through here: it calls replicas directly from its endpoint table.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from faasbus.bus import names
from faasbus.provider.services import SERVICES, SETTINGS
from faasbus.provider.types import valid_name

__all__ = ["routes"]

routes = web.RouteTableDef()

_HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade", "host", "content-length",
    }
)  # fmt: skip
_INTERNAL = {"X-OpenFaaS-Internal": "provider"}
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _error(error: type[web.HTTPError], message: str) -> web.HTTPError:
    return error(text=message + "\n", content_type="text/plain", headers=_INTERNAL)


def _split(target: str) -> tuple[str, str]:
    function, dot, namespace = target.rpartition(".")
    if not dot:
        return target, names.DEFAULT_NAMESPACE
    return function, namespace


async def proxy(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    settings = request.app[SETTINGS]
    function, namespace = _split(request.match_info["name"])
    valid_name(function, "function")
    valid_name(namespace, "namespace")
    supervisor = services.supervisor
    runtime = supervisor.runtime(namespace, function)
    if runtime is None or runtime.stored is None:
        stored = await services.store.get(namespace, function)
        if stored is None:
            raise _error(web.HTTPNotFound, f"function {function}.{namespace} not found")
        runtime = supervisor.apply(stored)
        if runtime is None:
            raise _error(web.HTTPServiceUnavailable, "the provider is shutting down")
    replica = runtime.pick()
    if replica is None:
        if runtime.stored is not None and runtime.stored.replicas == 0:
            reply = await supervisor.scale_up(namespace, function)
            if not reply.ok:
                raise _error(web.HTTPServiceUnavailable, reply.error)
        replica = await runtime.wait_ready(settings.start_timeout_s)
    if replica is None:
        reason = runtime.error or "no replica became ready"
        raise _error(web.HTTPServiceUnavailable, f"{function}.{namespace}: {reason}")

    prefix = f"/function/{request.match_info['name']}"
    raw_path = request.rel_url.raw_path[len(prefix) :] or "/"
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    target = URL(replica.url + raw_path + ("?" + request.query_string if request.query_string
                                           else ""), encoded=True)  # fmt: skip
    headers = CIMultiDict(
        (key, value) for key, value in request.headers.items() if key.lower() not in _HOP_BY_HOP
    )
    if request.remote and "X-Forwarded-For" not in headers:
        headers["X-Forwarded-For"] = request.remote
    if request.host and "X-Forwarded-Host" not in headers:
        headers["X-Forwarded-Host"] = request.host
    body = await request.read()
    response: web.StreamResponse | None = None
    try:
        async with services.http.request(
            request.method,
            target,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout_s),
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP_BY_HOP:
                    response.headers.add(key, value)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except (TimeoutError, aiohttp.ClientError) as exc:
        if response is not None and response.prepared:
            # The status line is gone already: all we can do is cut the body short.
            return response
        if isinstance(exc, TimeoutError):
            raise _error(web.HTTPGatewayTimeout, f"{function}.{namespace} did not answer in "
                         f"{settings.upstream_timeout_s:g}s") from None  # fmt: skip
        raise _error(web.HTTPBadGateway, f"{function}.{namespace}: {exc}") from None


for _method in _METHODS:
    routes.route(_method, "/function/{name}")(proxy)
    routes.route(_method, "/function/{name}/{path:.*}")(proxy)
