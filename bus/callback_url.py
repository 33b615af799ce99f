"""Which callback URLs faasbus will POST results to (ARCHITECTURE.md section 8).

Only ``http`` and ``https``. Link-local addresses (169.254.0.0/16, fe80::/10) and cloud metadata
endpoints are refused unless ``FAASBUS_CALLBACK_ALLOW_LINK_LOCAL=true``: a callback URL is chosen by
whoever calls the function, and a metadata endpoint would hand them the platform's credentials.
The gateway checks the URL when it accepts a call (400 naming the problem); the queue worker checks
the resolved addresses again before it sends, since DNS can change in between.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["CallbackUrlError", "check_callback_url", "check_resolved"]

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_METADATA_IPS = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class CallbackUrlError(ValueError):
    """The callback URL is not allowed; the message says why."""


def _address_refused(address: str) -> str | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip in _METADATA_IPS:
        return f"{address} is a cloud metadata address"
    if ip.is_link_local:
        return f"{address} is a link-local address"
    return None


def check_callback_url(url: str, *, allow_link_local: bool = False) -> str:
    """Return ``url`` if allowed, else raise :class:`CallbackUrlError` saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise CallbackUrlError(f"callback URL {url!r} must use http or https")
    host = (parts.hostname or "").lower()
    if not host:
        raise CallbackUrlError(f"callback URL {url!r} has no host")
    if allow_link_local:
        return url
    if host in _METADATA_HOSTS:
        raise CallbackUrlError(f"callback URL {url!r} points at a metadata service")
    reason = _address_refused(host)
    if reason:
        raise CallbackUrlError(f"callback URL {url!r} refused: {reason}")
    return url


def check_resolved(url: str, *, allow_link_local: bool = False) -> None:
    """Resolve the host and refuse it if any address is link-local or metadata (blocking)."""
    if allow_link_local:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise CallbackUrlError(f"callback host {host!r} does not resolve: {exc}") from exc
    for info in infos:
        reason = _address_refused(str(info[4][0]))
        if reason:
            raise CallbackUrlError(f"callback URL {url!r} refused: {reason}")
