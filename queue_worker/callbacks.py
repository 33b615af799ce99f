"""Callbacks: POST a call's result to its ``X-Callback-Url`` (REFERENCE.md section 3).

The body is the function's response body; the headers are the function's response headers (less
hop-by-hop ones) plus ``X-Call-Id``, ``X-Function-Status``, ``X-Function-Name``,
``X-Duration-Seconds``, ``X-Retry``, ``X-Retry-Max`` and ``User-Agent``. When a signing secret is
set, ``X-Faasbus-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`` lets the
receiver check origin and freshness (the Stripe-style scheme: the timestamp is signed with the
body so a captured callback cannot be replayed later with a new time).

Before each POST the URL's addresses are checked again (link-local and metadata addresses are
refused unless allowed): an IP-address host in place, its verdict remembered; a host name is
resolved in a thread every time, since DNS can change.

A cancelled call gets one callback with an empty body, ``X-Function-Status: 499`` and
``X-Call-State: cancelled``. Any 2xx from the receiver counts as delivered.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from faasbus.bus import VERSION, CallbackUrlError, check_resolved

__all__ = ["CallbackResult", "send_callback", "sign"]

_DROP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
     "content-length", "content-encoding", "host", "date", "server"}
)  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _literal_verdict(url: str) -> str | None:
    """For a URL whose host is an IP address: why it is refused, or "" when it is allowed (a pure
    function of the URL, so it is remembered). ``None`` for a host name, which is resolved for
    every callback, off the event loop (DNS can change)."""
    try:
        ipaddress.ip_address(urlsplit(url).hostname or "")
    except ValueError:
        return None
    try:
        check_resolved(url)
    except CallbackUrlError as exc:
        return str(exc)
    return ""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


@dataclass(frozen=True)
class CallbackResult:
    delivered: bool
    status: int = 0
    error: str = ""
    refused: bool = False  # the URL is not allowed: retrying will not help


async def send_callback(
    session: aiohttp.ClientSession,
    url: str,
    *,
    body: bytes,
    response_headers: Mapping[str, str],
    extra_headers: Mapping[str, str],
    signing_secret: str,
    timeout_s: float,
    allow_link_local: bool,
) -> CallbackResult:
    verdict = "" if allow_link_local else _literal_verdict(url)
    if verdict is None:
        try:
            await asyncio.to_thread(check_resolved, url)
        except CallbackUrlError as exc:
            verdict = str(exc)
    if verdict:
        return CallbackResult(delivered=False, error=verdict, refused=True)
    headers = {k: v for k, v in response_headers.items() if k.lower() not in _DROP}
    headers.update(extra_headers)
    headers["User-Agent"] = f"faasbus-queue-worker/{VERSION}"
    if signing_secret:
        headers["X-Faasbus-Signature"] = sign(signing_secret, body, int(time.time()))
    try:
        async with session.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:  # fmt: skip
            await response.read()
            ok = 200 <= response.status < 300
            error = "" if ok else f"HTTP {response.status}"
            return CallbackResult(delivered=ok, status=response.status, error=error)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return CallbackResult(delivered=False, error=f"{type(exc).__name__}: {exc}")
