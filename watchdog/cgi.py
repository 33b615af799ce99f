"""What a STDIO function (classic, serializing, streaming) sees of its HTTP request.

OpenFaaS hands request metadata to forked processes CGI-style, as environment variables
(REFERENCE.md section 5): each header as ``Http_<Header_With_Underscores>`` in Go's canonical
case (``X-Call-Id`` -> ``Http_X_Call_Id``), first value only, plus ``Http_Method``,
``Http_Query`` (raw, when non-empty), ``Http_Path``, ``Http_Host``, ``Http_Content_Length`` and
``Http_Transfer_Encoding`` (when the request has one). ``Content-Length`` follows Go's
``Request.ContentLength``: the header's value, ``-1`` for a chunked body, ``0`` for none.
``marshal_request`` wraps headers and body into one JSON document on stdin instead.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from aiohttp import web
from multidict import CIMultiDictProxy

from faasbus.watchdog.config import WatchdogConfig

__all__ = ["canonical_header", "cgi_environment", "marshal_request", "request_environment"]

# Go's net/http takes these out of Request.Header into fields of their own.
_NOT_IN_GO_HEADER = frozenset({"host", "transfer-encoding"})
_canonical_cache: dict[str, str] = {}


def canonical_header(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-call-id`` -> ``X-Call-Id``."""
    cached = _canonical_cache.get(name)
    if cached is not None:
        return cached
    if any(not (c.isalnum() or c == "-") or not c.isascii() for c in name):
        # Go leaves keys with spaces or other odd bytes exactly as sent.
        canonical = name
    else:
        canonical = "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))
    if len(_canonical_cache) < 4096:
        _canonical_cache[name] = canonical
    return canonical


def cgi_environment(
    headers: CIMultiDictProxy[str],
    *,
    method: str,
    path: str,
    raw_query: str,
    host: str,
) -> dict[str, str]:
    """The ``Http_*`` variables for one request (without the inherited environment)."""
    env: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _NOT_IN_GO_HEADER:
            continue
        key = "Http_" + canonical_header(name).replace("-", "_")
        # Go keeps the first value of a repeated header.
        env.setdefault(key, value)
    env["Http_Method"] = method
    if raw_query:
        env["Http_Query"] = raw_query
    if path:
        env["Http_Path"] = path
    if host:
        env["Http_Host"] = host
    transfer_encoding = headers.get("Transfer-Encoding")
    if transfer_encoding:
        env["Http_Transfer_Encoding"] = transfer_encoding.split(",")[0].strip()
    if "Http_Content_Length" not in env:
        env["Http_Content_Length"] = "-1" if transfer_encoding else "0"
    return env


def marshal_request(headers: Mapping[str, str] | CIMultiDictProxy[str], body: bytes) -> bytes:
    """The classic watchdog's ``marshal_request`` stdin: Go's JSON of its request struct.

    Go encodes ``http.Header`` as ``{"Canonical-Name": ["value", ...]}`` and ``[]byte`` as base64.
    """
    grouped: dict[str, list[str]] = {}
    for name, value in headers.items():
        if name.lower() in _NOT_IN_GO_HEADER:
            continue
        grouped.setdefault(canonical_header(name), []).append(value)
    document = {"header": grouped, "body": {"raw": base64.b64encode(body).decode("ascii")}}
    return json.dumps(document, separators=(",", ":")).encode()


def request_environment(
    base: dict[str, str], config: WatchdogConfig, request: web.BaseRequest
) -> dict[str, str] | None:
    """The child's environment: inherited, plus the ``Http_*`` variables when enabled."""
    if not config.cgi_headers:
        return None
    env = base.copy()
    env.update(
        cgi_environment(
            request.headers,
            method=request.method,
            path=request.path,
            raw_query=request.rel_url.raw_query_string,
            host=request.host,
        )
    )
    return env
