"""One exchange with a replica, over the lean pool or over aiohttp, answered to the client.

:func:`via_pool` is the fast path: request bodies given whole (absent or with a known length up to
64 KiB) to an ``http://`` replica go through :class:`faasbus.gateway.upstream.ReplicaPool`.
:func:`via_aiohttp` carries everything else (streamed uploads, ``https://`` replicas, or every call
when ``FAASBUS_UPSTREAM_CLIENT=aiohttp``) over the gateway's pooled ``aiohttp.ClientSession``.

Both answer the same way: an answer that is complete or small is sent whole with a
``Content-Length``; anything else is relayed chunk by chunk as the replica produces it (SSE,
NDJSON), each write bounded by ``write_timeout``. Once the status line is out, a failure on
either side can only be reported by cutting the client's connection without the final chunk,
which the client sees as a truncated answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from faasbus.gateway.forwarding import SMALL_BODY, BodyStream, copy_header_pairs, copy_headers
from faasbus.gateway.upstream import ReplicaPool, UpstreamError, UpstreamResponse

__all__ = ["Outgoing", "Replica", "Stamp", "via_aiohttp", "via_pool"]

log = structlog.get_logger(__name__)

# Status codes whose answers have no body whatever their headers say.
_NO_BODY_STATUS = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class Replica:
    """A replica's address, parsed once per endpoint URL."""

    base: str  # "http://127.0.0.1:8080", no trailing slash
    host: str
    port: int
    host_header: str
    plain_http: bool

    @classmethod
    def parse(cls, url: str) -> Replica:
        base = url.rstrip("/")
        parsed = URL(base)
        port = parsed.port or 80
        return cls(
            base=base,
            host=parsed.host or "127.0.0.1",
            port=port,
            host_header=f"{parsed.host}:{port}",
            plain_http=parsed.scheme == "http",
        )


@dataclass(frozen=True, slots=True)
class Stamp:
    """What the gateway adds to every answer it relays."""

    call_id: str
    start_ns: str
    served_by: str

    def apply(self, headers: CIMultiDict[str]) -> None:
        headers["X-Call-Id"] = self.call_id
        headers["X-Start-Time"] = self.start_ns
        headers["X-Served-By"] = self.served_by


@dataclass(slots=True)
class Outgoing:
    """The request to send on: where, which path and query, which headers, which body."""

    replica: Replica
    target: str
    headers: CIMultiDict[str]
    data: bytes | BodyStream | None
    stamp: Stamp

    def wire(self, method: str, body: bytes | None) -> bytes:
        """Request line, headers and body in one buffer: one write, one syscall."""
        parts = [method, " ", self.target, " HTTP/1.1\r\nHost: ", self.replica.host_header, "\r\n"]
        for name, value in self.headers.items():
            parts += (name, ": ", value, "\r\n")
        parts.append("\r\n")
        # aiohttp decoded the client's headers as UTF-8 with surrogateescape: this restores them.
        head = "".join(parts).encode("utf-8", "surrogateescape")
        return head + body if body else head


async def via_pool(
    request: web.Request,
    pool: ReplicaPool,
    outgoing: Outgoing,
    *,
    deadline: float,
    write_timeout_s: float,
) -> web.StreamResponse:
    method = request.method
    body = outgoing.data
    if isinstance(body, BodyStream):
        raise TypeError("the pool sends whole bodies only")
    replica, stamp = outgoing.replica, outgoing.stamp
    data = outgoing.wire(method, body)
    upstream = await pool.request(replica.host, replica.port, method, data, deadline=deadline)
    try:
        whole = upstream.complete or _head_says_whole(upstream.status, upstream.content_length)
        answer = await upstream.read() if whole else upstream.chunks()
        return await _answer(request, upstream, answer, stamp, write_timeout_s)
    finally:
        upstream.release(pool, (replica.host, replica.port))


async def via_aiohttp(
    request: web.Request,
    session: aiohttp.ClientSession,
    outgoing: Outgoing,
    *,
    write_timeout_s: float,
) -> web.StreamResponse:
    url = URL(outgoing.replica.base + outgoing.target, encoded=True)
    data, stamp = outgoing.data, outgoing.stamp
    payload = data.chunks() if isinstance(data, BodyStream) else data
    method = request.method
    async with session.request(
        method, url, headers=outgoing.headers, data=payload, allow_redirects=False
    ) as upstream:
        whole = method == "HEAD" or _head_says_whole(upstream.status, upstream.content_length)
        answer = await upstream.read() if whole else upstream.content.iter_any()
        return await _answer(request, upstream, answer, stamp, write_timeout_s)


def _head_says_whole(status: int, length: int | None) -> bool:
    """Whether the answer's head says to send it whole: no body by its status, or a small one."""
    return status in _NO_BODY_STATUS or (length is not None and length <= SMALL_BODY)


async def _answer(
    request: web.Request,
    upstream: UpstreamResponse | aiohttp.ClientResponse,
    answer: bytes | AsyncIterator[bytes],
    stamp: Stamp,
    write_timeout_s: float,
) -> web.StreamResponse:
    """Answer the client with the replica's status and headers, plus the gateway's stamp.

    An answer read whole (``bytes``) goes out with a ``Content-Length``; an iterator is relayed
    chunk by chunk as the replica produces it (:func:`_relay`).
    """
    if isinstance(answer, bytes):
        response = web.Response(status=upstream.status, reason=upstream.reason)
        _add_headers(upstream, response, stamp)
        response.body = answer
        return response
    stream = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    _add_headers(upstream, stream, stamp)
    await stream.prepare(request)
    await _relay(request, answer, stream, write_timeout_s)
    return stream


def _add_headers(
    upstream: UpstreamResponse | aiohttp.ClientResponse,
    response: web.StreamResponse,
    stamp: Stamp,
) -> None:
    """Add the replica's end-to-end headers and the gateway's stamp to ``response``.

    The pool gives the replica's headers as raw (name, value) pairs, aiohttp as a multidict.
    """
    if isinstance(upstream, UpstreamResponse):
        copy_header_pairs(upstream.headers, response.headers)
    else:
        copy_headers(upstream.headers, response.headers)
    stamp.apply(response.headers)


async def _relay(
    request: web.Request,
    chunks: AsyncIterator[bytes],
    stream: web.StreamResponse,
    write_timeout_s: float,
) -> None:
    """Copy the answer as it arrives; on a failure either side, cut the client's connection."""
    try:
        async for chunk in chunks:
            async with asyncio.timeout(write_timeout_s):
                await stream.write(chunk)
    except (aiohttp.ClientError, UpstreamError, TimeoutError, ConnectionError) as exc:
        log.warning("function_stream_cut", path=request.path, error=repr(exc))
        transport = request.transport
        if transport is not None:
            transport.close()
