"""``/system/*``: the OpenFaaS control API, forwarded to the provider at ``functions_provider_url``.

The gateway does not implement the control API itself; it fronts any faas-provider (ours, or
another one), the way the OpenFaaS gateway does. It adds three things on the way:

- basic auth, checked here (the provider trusts the gateway);
- ``invocationCount`` in ``GET /system/functions`` and ``GET /system/function/NAME``, from the
  gateway's own counters (the provider cannot know them);
- ``GET /system/info`` always has non-null ``provider``, ``provider.version`` and ``version``
  objects (faas-cli dereferences them), with ``version`` describing this gateway.

Everything else streams through both ways as it is: request bodies (JSON whatever the
Content-Type), status codes (faas-cli relies on 202/404/409), redirects (never followed), and
``/system/logs`` NDJSON, flushed line by line while ``follow=true`` keeps it open.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from faasbus.bus import names
from faasbus.gateway.auth import BasicAuth
from faasbus.gateway.errors import internal_error
from faasbus.gateway.forwarding import SMALL_BODY, BodyStream, copy_headers, request_headers
from faasbus.gateway.metrics import GatewayMetrics
from faasbus.gateway.settings import GatewaySettings

__all__ = ["SystemForwarder", "complete_info", "system_routes"]

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}
# The log stream stays open as long as the client follows it.
_STREAMING = aiohttp.ClientTimeout(total=None, sock_connect=10.0)

Relay = Callable[[web.Request, aiohttp.ClientResponse], Awaitable[web.StreamResponse]]


def _arch() -> str:
    machine = platform.machine()
    return _ARCH.get(machine, machine or "unknown")


def complete_info(raw: Any, version: str) -> dict[str, Any]:
    """The gateway's ``/system/info`` from the provider's answer, whatever shape it had.

    A faas-provider answers its own info (``{"provider": "<name>", "orchestration", "version"}``);
    a gateway-shaped answer has it under ``provider``. Either way the result is gateway-shaped.
    """
    info: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    provider = info.get("provider")
    if not isinstance(provider, dict):
        provider = {
            key: info[key] for key in ("provider", "orchestration", "version") if key in info
        }
        info = {key: value for key, value in info.items() if key == "arch"}
    provider = dict(provider)
    if not isinstance(provider.get("provider"), str) or not provider["provider"]:
        provider["provider"] = "faasbus"
    if not isinstance(provider.get("orchestration"), str) or not provider["orchestration"]:
        provider["orchestration"] = "process"
    provider_version = provider.get("version")
    provider_version = dict(provider_version) if isinstance(provider_version, dict) else {}
    provider_version.setdefault("sha", "")
    provider_version.setdefault("release", "")
    provider["version"] = provider_version
    info["provider"] = provider
    info["version"] = {"sha": "", "release": version, "commit_message": ""}
    if not isinstance(info.get("arch"), str) or not info["arch"]:
        info["arch"] = _arch()
    return info


class SystemForwarder:
    """Handlers for ``/system/*``; ``session`` is attached at app start-up."""

    def __init__(self, settings: GatewaySettings, metrics: GatewayMetrics, version: str) -> None:
        self._settings = settings
        self._metrics = metrics
        self._version = version
        self._base = settings.functions_provider_url
        self._timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout_s, sock_connect=10.0)
        self.session: aiohttp.ClientSession | None = None

    async def forward(self, request: web.Request) -> web.StreamResponse:
        """Anything under /system/: streamed to the provider and back."""
        return await self._call(request, self._relay)

    async def list_functions(self, request: web.Request) -> web.StreamResponse:
        namespace = request.query.get("namespace") or names.DEFAULT_NAMESPACE
        return await self._call(request, self._counted(namespace, many=True))

    async def get_function(self, request: web.Request) -> web.StreamResponse:
        namespace = request.query.get("namespace") or names.DEFAULT_NAMESPACE
        return await self._call(request, self._counted(namespace, many=False))

    async def info(self, request: web.Request) -> web.StreamResponse:
        async def relay(_request: web.Request, upstream: aiohttp.ClientResponse) -> web.Response:
            raw: Any = None
            if upstream.status == 200:
                try:
                    raw = json.loads(await upstream.read())
                except ValueError:
                    raw = None
            return web.json_response(complete_info(raw, self._version))

        return await self._call(request, relay)

    # ------------------------------------------------------------ plumbing

    async def _call(self, request: web.Request, relay: Relay) -> web.StreamResponse:
        session = self.session
        if session is None:
            raise RuntimeError("the gateway app has not started")
        headers = request_headers(request.headers)
        if "X-Forwarded-For" not in headers:
            headers["X-Forwarded-For"] = request.remote or ""
        if "X-Forwarded-Host" not in headers and request.host:
            headers["X-Forwarded-Host"] = request.host
        data: bytes | BodyStream | None = None
        body: BodyStream | None = None
        if request.body_exists:
            length = request.content_length
            if length is not None and length > self._settings.max_body_size:
                raise internal_error(413, "request body too large")
            if length is not None and length <= SMALL_BODY:
                data = await request.read()
            else:
                data = body = BodyStream(
                    request.content, self._settings.max_body_size, self._settings.read_timeout_s
                )
        streaming = request.path == "/system/logs"
        url = URL(self._base + request.raw_path, encoded=True)
        try:
            async with session.request(
                request.method,
                url,
                headers=headers,
                data=data.chunks() if isinstance(data, BodyStream) else data,
                allow_redirects=False,
                timeout=_STREAMING if streaming else self._timeout,
            ) as upstream:
                return await relay(request, upstream)
        except TimeoutError:
            status = body.error if body is not None and body.error else 504
            raise internal_error(status, "the provider did not answer in time") from None
        except aiohttp.ClientError as exc:
            status = body.error if body is not None and body.error else 502
            raise internal_error(status, f"the provider failed: {exc}") from None

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        copy_headers(upstream.headers, response.headers)
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                # One write per chunk the provider flushed: NDJSON log lines arrive as written.
                await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError, ConnectionError):
            # The answer has started: a cut connection is the only honest way to fail now.
            transport = request.transport
            if transport is not None:
                transport.close()
        return response

    def _counted(self, namespace: str, *, many: bool) -> Relay:
        async def relay(_request: web.Request, upstream: aiohttp.ClientResponse) -> web.Response:
            answer = await upstream.read()
            response = web.Response(status=upstream.status, reason=upstream.reason)
            copy_headers(upstream.headers, response.headers)
            if upstream.status == 200:
                try:
                    parsed = json.loads(answer)
                except ValueError:
                    parsed = None
                items = parsed if many else [parsed]
                if isinstance(items, list) and all(isinstance(i, dict) for i in items):
                    for item in items:
                        item_namespace = item.get("namespace") or namespace
                        item["invocationCount"] = self._metrics.invocations(
                            str(item_namespace), str(item.get("name", ""))
                        )
                    answer = json.dumps(parsed).encode()
                    response.headers.popall("Content-Length", None)
                    response.headers["Content-Type"] = "application/json"
            response.body = answer
            return response

        return relay


def system_routes(system: SystemForwarder, auth: BasicAuth) -> list[web.RouteDef]:
    """The /system/* route table; every route behind basic auth when it is on."""
    guard = auth.guard
    return [
        web.get("/system/info", guard(system.info), allow_head=False),
        web.get("/system/functions", guard(system.list_functions), allow_head=False),
        web.get("/system/function/{name}", guard(system.get_function), allow_head=False),
        web.route("*", "/system/{tail:.*}", guard(system.forward)),
    ]
