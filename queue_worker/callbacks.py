"""Callbacks: POST a call's result to its ``X-Callback-Url`` (REFERENCE.md section 3).

The body is the function's response body; the headers are the function's response headers (less
hop-by-hop ones) plus ``X-Call-Id``, ``X-Function-Status``, ``X-Function-Name``,
``X-Duration-Seconds``, ``X-Retry``, ``X-Retry-Max`` and ``User-Agent``. When a signing secret is
set, ``X-Faasbus-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`` lets the
receiver check origin and freshness (the Stripe-style scheme: the timestamp is signed with the
body so a captured callback cannot be replayed later with a new time).

A cancelled call gets one callback with an empty body, ``X-Function-Status: 499`` and
``X-Call-State: cancelled``. Any 2xx from the receiver counts as delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from faasbus.bus import VERSION, CallbackUrlError, check_resolved

__all__ = ["CallbackResult", "send_callback", "sign"]

_DROP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
     "content-length", "content-encoding", "host", "date", "server"}
)  # fmt: skip


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
    try:
        await asyncio.to_thread(check_resolved, url, allow_link_local=allow_link_local)
    except CallbackUrlError as exc:
        return CallbackResult(delivered=False, error=str(exc), refused=True)
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
