"""The synchronous fast path: ``/function/NAME[.NAMESPACE][/path]`` straight to a warm replica.

Per request the gateway resolves the name (cached), takes the replica with the fewest requests in
flight from the in-memory :class:`faasbus.bus.EndpointTable` (fed by a watch on ``faas_endpoints``,
so there is no provider call per request; a function with no ready replica is scaled from zero by
the table, one scale-up shared by every waiting request), and relays the exchange over pooled
keep-alive connections (:mod:`faasbus.gateway.exchange`). Small bodies are relayed whole, which is
what makes the common case cheap; anything else is streamed both ways, so SSE and NDJSON answers
reach the client as the function produces them.

Cost matters here (docs/benchmarks.md): no middleware runs on this route, nothing is logged per
request, metrics are plain integer bumps, names and replica addresses are parsed once, and
headers are copied once.

A replica that refuses connections (it died, its record is not gone yet) costs one retry on
another replica: nothing was sent, so it is safe for every method. A replica dying mid-request
fails only the requests it held (``502``, or a cut stream once the answer had started).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from faasbus.bus import Endpoint, EndpointTable, NoReplicaError, names
from faasbus.gateway.errors import internal_error
from faasbus.gateway.exchange import Outgoing, Replica, Stamp, via_aiohttp, via_pool
from faasbus.gateway.forwarding import SMALL_BODY, BodyStream, request_headers
from faasbus.gateway.metrics import FunctionStats, GatewayMetrics
from faasbus.gateway.settings import GatewaySettings
from faasbus.gateway.upstream import ReplicaPool, UpstreamConnectError, UpstreamError

__all__ = ["FunctionProxy", "function_routes", "new_call_id"]

_PREFIX_LEN = len("/function/")
_MAX_CACHED = 4096
_VARIANT = "89ab"
_CONNECT_FAILED = (aiohttp.ClientConnectorError, UpstreamConnectError)
_TEXT = {
    408: "timed out reading the request body",
    413: "request body too large",
    502: "the function's replica failed",
    504: "the function did not answer in time",
}


class _RandomHex:
    """``os.urandom`` read 4 KiB at a time: one system call per 256 call ids, not one each."""

    def __init__(self) -> None:
        self._hex = ""
        self._offset = 0

    def take32(self) -> str:
        if self._offset + 32 > len(self._hex):
            self._hex = os.urandom(4096).hex()
            self._offset = 0
        start = self._offset
        self._offset = start + 32
        return self._hex[start : start + 32]


_random_hex = _RandomHex()


def new_call_id() -> str:
    """A random (version 4) UUID string, built without the ``uuid`` module's overhead.

    Several times cheaper than ``str(uuid.uuid4())`` and as unguessable (``os.urandom``): call
    ids name calls that can be looked up and cancelled.
    """
    h = _random_hex.take32()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _suffix(raw_path: str) -> str:
    """What the function sees: ``/{path}`` and the query string, still percent-encoded."""
    rest = raw_path[_PREFIX_LEN:]
    slash = rest.find("/")
    query = rest.find("?")
    if query >= 0 and (slash < 0 or query < slash):
        return "/" + rest[query:]
    return rest[slash:] if slash >= 0 else "/"


@dataclass(slots=True)
class _Target:
    namespace: str
    function: str
    stats: FunctionStats | None = None


class FunctionProxy:
    """The ``/function/...`` handler; ``table`` and the clients are attached at app start-up."""

    def __init__(self, settings: GatewaySettings, metrics: GatewayMetrics, version: str) -> None:
        self._metrics = metrics
        self._served_by = f"faasbus/{version}"
        self._wait_s = settings.function_wait_s
        self._scale_from_zero = settings.scale_from_zero
        self._max_body = settings.max_body_size
        self._read_timeout_s = settings.read_timeout_s
        self._write_timeout_s = settings.write_timeout_s
        self._upstream_timeout_s = settings.upstream_timeout_s
        self._targets: dict[str, _Target | None] = {}
        self._replicas: dict[str, Replica] = {}
        self.table: EndpointTable | None = None
        self.session: aiohttp.ClientSession | None = None
        self.pool: ReplicaPool | None = None

    def _target(self, name: str) -> _Target | None:
        """``NAME`` or ``NAME.NAMESPACE`` (split at the last dot); None when not a valid name."""
        try:
            return self._targets[name]
        except KeyError:
            pass
        function, dot, namespace = name.rpartition(".")
        if not dot:
            function, namespace = name, names.DEFAULT_NAMESPACE
        target: _Target | None = None
        if names.is_dns1123_label(function) and names.is_dns1123_label(namespace):
            target = _Target(namespace, function)
        if len(self._targets) >= _MAX_CACHED:
            self._targets.clear()
        self._targets[name] = target
        return target

    def _replica(self, endpoint: Endpoint) -> Replica:
        replica = self._replicas.get(endpoint.url)
        if replica is None:
            if len(self._replicas) >= _MAX_CACHED:
                self._replicas.clear()
            replica = self._replicas[endpoint.url] = Replica.parse(endpoint.url)
        return replica

    def _stats(self, target: _Target) -> FunctionStats:
        stats = target.stats
        if stats is None:
            stats = target.stats = self._metrics.function(target.namespace, target.function)
        return stats

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        start_ns = str(time.time_ns())
        incoming = request.headers
        call_id = incoming.get("X-Call-Id") or new_call_id()
        target = self._target(request.match_info["name"])
        if target is None:
            raise internal_error(404, "function not found", call_id)

        headers = request_headers(incoming)
        headers["X-Call-Id"] = call_id
        headers["X-Start-Time"] = start_ns
        if "X-Forwarded-For" not in headers:
            headers["X-Forwarded-For"] = request.remote or ""
        if "X-Forwarded-Host" not in headers:
            host = incoming.get("Host")
            if host:
                headers["X-Forwarded-Host"] = host

        body: BodyStream | None = None
        data: bytes | BodyStream | None = None
        if request.body_exists:
            length = request.content_length
            if length is not None and length > self._max_body:
                raise internal_error(413, "request body too large", call_id)
            if length is not None and length <= SMALL_BODY:
                data = await request.read()
            else:
                data = body = BodyStream(request.content, self._max_body, self._read_timeout_s)

        table = self.table
        if table is None:
            raise RuntimeError("the gateway app has not started")
        stamp = Stamp(call_id, start_ns, self._served_by)
        namespace, function = target.namespace, target.function
        try:
            async with table.acquire(
                namespace, function, wait_s=self._wait_s, scale_from_zero=self._scale_from_zero
            ) as endpoint:
                self._stats(target).started += 1
                try:
                    response = await self._exchange(request, endpoint, headers, data, stamp)
                except _CONNECT_FAILED:
                    # Refused before anything was sent: try another replica, holding this lease
                    # meanwhile so the least-in-flight choice steers away from the dead one.
                    async with table.acquire(
                        namespace, function, wait_s=0, scale_from_zero=False
                    ) as other:
                        if other.url == endpoint.url:
                            raise
                        response = await self._exchange(request, other, headers, data, stamp)
        except NoReplicaError as exc:
            if exc.not_found:
                raise internal_error(404, f"function {function}.{namespace} not found",
                                     call_id) from None  # fmt: skip
            status, text = 503, f"no replica ready: {exc.reason}"
        except _CONNECT_FAILED:
            status, text = 502, "cannot connect to the function's replica"
        except aiohttp.ConnectionTimeoutError:
            status, text = 502, "cannot connect to the function's replica"
        except TimeoutError:
            status = body.error if body is not None and body.error else 504
            text = _TEXT[status]
        except (aiohttp.ClientError, UpstreamError):
            status = body.error if body is not None and body.error else 502
            text = _TEXT[status]
        else:
            self._stats(target).observe(response.status, time.perf_counter() - started)
            return response
        self._stats(target).observe(status, time.perf_counter() - started)
        raise internal_error(status, text, call_id)

    async def _exchange(
        self,
        request: web.Request,
        endpoint: Endpoint,
        headers: CIMultiDict[str],
        data: bytes | BodyStream | None,
        stamp: Stamp,
    ) -> web.StreamResponse:
        replica = self._replica(endpoint)
        outgoing = Outgoing(replica, _suffix(request.raw_path), headers, data, stamp)
        pool = self.pool
        if pool is not None and replica.plain_http and not isinstance(data, BodyStream):
            deadline = asyncio.get_running_loop().time() + self._upstream_timeout_s
            return await via_pool(
                request, pool, outgoing, deadline=deadline, write_timeout_s=self._write_timeout_s
            )
        session = self.session
        if session is None:
            raise RuntimeError("the gateway app has not started")
        return await via_aiohttp(request, session, outgoing, write_timeout_s=self._write_timeout_s)


def function_routes(proxy: FunctionProxy) -> list[web.RouteDef]:
    """The /function/* route table: every method, with and without a path; no auth (OpenFaaS)."""
    return [
        web.route("*", "/function/{name}", proxy.handle),
        web.route("*", "/function/{name}/{path:.*}", proxy.handle),
    ]
