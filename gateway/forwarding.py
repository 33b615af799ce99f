"""What every proxied exchange shares: header hygiene and a bounded, streamed request body.

Used by the function fast path (:mod:`faasbus.gateway.proxy`) and by the ``/system/*`` forwarder
(:mod:`faasbus.gateway.system`). Hop-by-hop headers (RFC 9110 section 7.6.1, plus the ones a
``Connection`` header names) belong to one connection and are never passed on; aiohttp writes its
own ``Host``, framing and ``Connection`` for the next hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "HOP_BY_HOP",
    "SKIP_AUTO_HEADERS",
    "SMALL_BODY",
    "BodyStream",
    "copy_header_pairs",
    "copy_headers",
    "request_headers",
]

HOP_BY_HOP = (
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
)
# Expect: the gateway's server already answered "100 Continue" to the client when it started
# reading the body; asking the replica again would only add a round trip.
_REQUEST_DROP = (*HOP_BY_HOP, "Host", "Expect")

# aiohttp's client adds these when absent; a proxy must send only what the client sent (an added
# Accept-Encoding would make functions compress answers the client never asked to decode).
SKIP_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})

# Bodies up to this size with a known length are read whole and sent as bytes: they are already
# in the socket buffer, and a bytes payload costs far less than a streamed one.
SMALL_BODY = 64 * 1024


def _drop_connection_tokens(headers: CIMultiDict[str], connection: str) -> None:
    for token in connection.split(","):
        name = token.strip()
        if name:
            headers.popall(name, None)


def request_headers(source: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """A copy of a client's request headers fit to send on: no Host, no hop-by-hop."""
    headers = source.copy()
    connection = source.get("Connection")
    for name in _REQUEST_DROP:
        if name in headers:
            del headers[name]
    if connection:
        _drop_connection_tokens(headers, connection)
    return headers


def copy_headers(source: CIMultiDictProxy[str], target: CIMultiDict[str]) -> None:
    """Add an upstream response's end-to-end headers to ``target``."""
    target.extend(source)
    connection = source.get("Connection")
    for name in HOP_BY_HOP:
        if name in target:
            del target[name]
    if connection:
        _drop_connection_tokens(target, connection)


_HOP_BY_HOP_LOWER = frozenset(name.lower() for name in HOP_BY_HOP)


def copy_header_pairs(pairs: list[tuple[str, str]], target: CIMultiDict[str]) -> None:
    """Add a replica's end-to-end headers, given as raw (name, value) pairs, to ``target``."""
    connection: list[str] = []
    for name, value in pairs:
        lowered = name.lower()
        if lowered in _HOP_BY_HOP_LOWER:
            if lowered == "connection":
                connection.append(value)
            continue
        target.add(name, value)
    for value in connection:
        _drop_connection_tokens(target, value)


class BodyStream:
    """A client's request body as an async iterator, streamed on chunk by chunk.

    Counts bytes against ``limit`` and bounds the wait for each chunk by ``read_timeout_s``. aiohttp
    wraps whatever a body iterator raises into a connection error, so the reason is kept in
    :attr:`error` (the status to answer, ``413`` or ``408``) for the caller to answer it instead
    of ``502``.
    """

    __slots__ = ("_content", "_limit", "_read_timeout_s", "error")

    def __init__(self, content: StreamReader, limit: int, read_timeout_s: float) -> None:
        self._content = content
        self._limit = limit
        self._read_timeout_s = read_timeout_s
        self.error: int | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        received = 0
        while True:
            try:
                async with asyncio.timeout(self._read_timeout_s):
                    chunk = await self._content.readany()
            except TimeoutError:
                self.error = 408
                raise
            if not chunk:
                return
            received += len(chunk)
            if received > self._limit:
                self.error = 413
                raise _BodyTooLarge
            yield chunk


class _BodyTooLarge(Exception):
    """Raised inside a body iterator; the caller reads :attr:`BodyStream.error` instead."""
