"""Compose a queue worker: bus, tables, HTTP session, metrics, cancel listener, dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from faasbus.bus import (
    CallStore,
    EndpointTable,
    FunctionCatalog,
    cancel_and_wait,
    connect,
    declare_bus,
    names,
)
from faasbus.queue_worker.dispatcher import Dispatcher
from faasbus.queue_worker.handler import CallHandler
from faasbus.queue_worker.metrics import WorkerMetrics
from faasbus.queue_worker.settings import WorkerSettings

__all__ = ["run_worker"]

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def _metrics_server(settings: WorkerSettings, metrics: WorkerMetrics) -> AsyncIterator[None]:
    if not settings.metrics_port:
        yield
        return

    async def serve_metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.listen_host, settings.metrics_port)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()


async def run_worker(settings: WorkerSettings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then shut down in order (intake, in-flight, bus)."""
    metrics = WorkerMetrics()
    async with contextlib.AsyncExitStack() as stack:
        bus = await connect(settings.bus, name="faasbus-queue-worker")
        stack.push_async_callback(bus.close)
        await declare_bus(bus.js, settings.bus)
        table = await stack.enter_async_context(EndpointTable(bus))
        catalog = await stack.enter_async_context(FunctionCatalog(bus))
        session = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                auto_decompress=False,
            )
        )
        await stack.enter_async_context(_metrics_server(settings, metrics))
        handler = CallHandler(
            js=bus.js, settings=settings, table=table, catalog=catalog,
            calls=await CallStore.open(bus.js), session=session, metrics=metrics, running={},
        )  # fmt: skip
        dispatcher = Dispatcher(handler, catalog)

        async def on_cancel(msg: object) -> None:
            call_id = getattr(msg, "data", b"").decode(errors="replace")
            if dispatcher.cancel_call(call_id):
                log.info("call_cancelled_while_running", call_id=call_id)

        cancel_sub = await bus.nc.subscribe(names.CANCEL_SUBJECT, cb=on_cancel)
        stack.push_async_callback(cancel_sub.unsubscribe)
        runner = asyncio.create_task(dispatcher.run(), name="dispatcher")
        print("faasbus-queue-worker ready", flush=True)  # noqa: T201 - supervisor handshake
        log.info("queue_worker_started", max_inflight=settings.max_inflight)
        try:
            await stop.wait()
        finally:
            log.info("queue_worker_stopping")
            await dispatcher.stop()
            await cancel_and_wait([runner])
    log.info("queue_worker_stopped")
    sys.stdout.flush()
