"""Errors of the gateway, and the HTTP answers for failures the gateway itself makes.

    GatewayError
    └── CredentialsError   basic_auth is on but the credential files are missing or empty

Errors from below are mapped to HTTP at the request boundary, never leaked as 500s:

    faasbus.bus.NoReplicaError(not_found=True)   → 404  the function does not exist
    faasbus.bus.NoReplicaError                   → 503  no replica became ready in time
    TimeoutError (upstream_timeout)              → 504
    aiohttp.ClientError (transport)              → 502
    request body over max_body_size              → 413
    request body stalled over read_timeout       → 408

Every answer the gateway makes instead of a function carries ``X-OpenFaaS-Internal: gateway``
(REFERENCE.md section 1) so callers and retry logic can tell it from a function's own 5xx;
:func:`internal_error` builds those.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["INTERNAL_HEADER", "CredentialsError", "GatewayError", "internal_error"]

INTERNAL_HEADER = "X-OpenFaaS-Internal"


class GatewayError(Exception):
    """Base of the gateway's own errors."""


class CredentialsError(GatewayError):
    """basic_auth is on but ``path`` (a credential file) is missing, unreadable or empty."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"basic auth credential {path}: {problem}")
        self.path = path
        self.problem = problem


_ERRORS: dict[int, type[web.HTTPException]] = {
    404: web.HTTPNotFound,
    408: web.HTTPRequestTimeout,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
    504: web.HTTPGatewayTimeout,
}


def internal_error(status: int, text: str, call_id: str | None = None) -> web.HTTPException:
    """An HTTP error made by the gateway: marked internal, with the call id echoed if known."""
    headers = {INTERNAL_HEADER: "gateway"}
    if call_id is not None:
        headers["X-Call-Id"] = call_id
    if status == 413:
        # The only one whose constructor wants sizes; they only feed a default text we replace.
        return web.HTTPRequestEntityTooLarge(0, 0, text=text + "\n", headers=headers)
    return _ERRORS[status](text=text + "\n", headers=headers)
