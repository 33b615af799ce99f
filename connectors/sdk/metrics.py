"""Connector metrics (faasbus's own, prefix ``faasbus_``) and the ``/metrics`` listener.

    faasbus_connector_events_total{connector,topic}            events read from the source
    faasbus_connector_invocations_total{connector,function}    invocations JetStream acked
    faasbus_connector_publish_retries_total{connector}         failed publish attempts, retried
    faasbus_connector_skipped_total{connector,function,reason} ticks or events not handed off

``topic`` is the event's topic when some function subscribes to it and ``(unrouted)`` otherwise,
so a source with wildcard subjects cannot grow the label set without bound. ``function`` is
``name.namespace`` as in OpenFaaS's metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

__all__ = ["UNROUTED", "ConnectorMetrics", "serve_metrics"]

UNROUTED = "(unrouted)"


class ConnectorMetrics:
    """One registry per connector process (no module globals)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "faasbus_connector_events", "Events read from the source",
            ["connector", "topic"], registry=self.registry,
        )  # fmt: skip
        self.invocations = Counter(
            "faasbus_connector_invocations", "Invocations acked by JetStream",
            ["connector", "function"], registry=self.registry,
        )  # fmt: skip
        self.publish_retries = Counter(
            "faasbus_connector_publish_retries", "Publish attempts that failed and were retried",
            ["connector"], registry=self.registry,
        )  # fmt: skip
        self.skipped = Counter(
            "faasbus_connector_skipped", "Ticks or events deliberately not handed off",
            ["connector", "function", "reason"], registry=self.registry,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> AsyncIterator[None]:
    """``GET /metrics`` on ``host:port`` for the life of the context; nothing when port is 0."""
    if not port:
        yield
        return

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield
    finally:
        await runner.cleanup()
