"""The common runner behind every ``python -m faasbus.connectors.<name>``.

A connector is a :class:`Connector`: a name, a settings reader and a source factory. The runner
owns everything else, in one place and one order:

1. settings from the environment (a bad value exits 2 naming the variable), structlog;
2. the bus — connecting is retried for as long as it takes (a connector never exits on a
   transient bus error) — and the declared streams;
3. the function catalog (``rebuild_interval`` resync) and the topic map on it, the call store,
   the publisher, the metrics listener (``FAASBUS_METRICS_PORT``);
4. the source (an async context manager); once it is in, ``faasbus-<name>-connector ready`` is
   printed on stdout, the one line supervisors and tests wait for (logs go to stderr);
5. on SIGTERM or SIGINT, the reverse: the source stops intake and finishes in-flight hand-offs
   within ``FAASBUS_SHUTDOWN_GRACE``, then publisher, catalog and bus close. Exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

from faasbus.bus import (
    Bus,
    BusSettings,
    BusUnavailable,
    CallStore,
    FunctionCatalog,
    SettingsError,
    configure_logging,
    connect,
    declare_bus,
)
from faasbus.connectors.sdk.metrics import ConnectorMetrics, serve_metrics
from faasbus.connectors.sdk.publisher import Publisher
from faasbus.connectors.sdk.settings import ConnectorSettings, HasCommonSettings
from faasbus.connectors.sdk.topics import TopicMap

__all__ = ["Connector", "ConnectorContext", "Source", "main", "run_connector"]

log = structlog.get_logger(__name__)

S = TypeVar("S", bound=HasCommonSettings)
T = TypeVar("T")

# A source is an async context manager: entering starts intake (subscribe, poll, schedule),
# leaving stops intake and finishes or cancels in-flight hand-offs. Nothing else is asked of it.
Source = AbstractAsyncContextManager[object]


@dataclass(frozen=True)
class ConnectorContext:
    """What the runner gives a source."""

    name: str
    settings: ConnectorSettings
    bus: Bus
    catalog: FunctionCatalog
    topics: TopicMap
    publisher: Publisher
    calls: CallStore
    metrics: ConnectorMetrics


@dataclass(frozen=True)
class Connector(Generic[S]):
    """One kind of connector: ``name`` is ``cron``, ``nats``, ``kafka``, ``sqs``."""

    name: str
    settings: Callable[[Mapping[str, str]], S]
    source: Callable[[ConnectorContext, S], Source]

    @property
    def process_name(self) -> str:
        return f"faasbus-{self.name}-connector"


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None (``work`` cancelled) if ``stop`` is set first."""
    task = asyncio.create_task(work, name="connector-start-step")
    stopping = asyncio.create_task(stop.wait(), name="connector-stop-wait")
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        if not task.done():
            task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        if stop.is_set():
            return None
        raise


async def _connect_patiently(settings: BusSettings, name: str, stop: asyncio.Event) -> Bus | None:
    """Connect, however long the bus takes to appear; None if asked to stop first."""
    while not stop.is_set():
        try:
            return await _unless_stopped(connect(settings, name=name), stop)
        except BusUnavailable as exc:
            log.warning("bus_unavailable_at_start", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
    return None


async def _declare_patiently(bus: Bus, stop: asyncio.Event) -> bool:
    while not stop.is_set():
        try:
            await declare_bus(bus.js, bus.settings)
        except Exception as exc:
            log.warning("declare_bus_failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
        else:
            return True
    return False


async def run_connector(
    connector: Connector[S],
    settings: S,
    stop: asyncio.Event,
    *,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run until ``stop`` is set, then shut down in order (source, publisher, catalog, bus)."""
    common = settings.common
    if not common.asynchronous_invocation:
        log.warning("asynchronous_invocation_ignored",
                    reason="faasbus connectors always invoke through the bus")  # fmt: skip
    metrics = ConnectorMetrics()
    async with contextlib.AsyncExitStack() as stack:
        bus = await _connect_patiently(common.bus, connector.process_name, stop)
        if bus is None:
            return
        stack.push_async_callback(bus.close)
        if not await _declare_patiently(bus, stop):
            return
        catalog = await stack.enter_async_context(
            FunctionCatalog(bus, resync_s=common.rebuild_interval_s)
        )
        topics = TopicMap(catalog)
        calls = await CallStore.open(bus.js)
        publisher = await stack.enter_async_context(
            Publisher(
                connector=connector.name,
                bus=bus,
                topics=topics,
                calls=calls,
                metrics=metrics,
                settings=common,
            )
        )
        await stack.enter_async_context(
            serve_metrics(metrics.registry, common.listen_host, common.metrics_port)
        )
        context = ConnectorContext(
            name=connector.name, settings=common, bus=bus, catalog=catalog, topics=topics,
            publisher=publisher, calls=calls, metrics=metrics,
        )  # fmt: skip
        # Entering a source may wait for it (a NATS server, a broker) as long as it takes:
        # a stop request meanwhile must still be honoured.
        entered = await _unless_stopped(
            stack.enter_async_context(connector.source(context, settings)), stop
        )
        if entered is None and stop.is_set():
            log.info("connector_stopped_before_start", connector=connector.name)
            return
        log.info("connector_started", connector=connector.name, topics=sorted(topics.topics()))
        if ready is not None:
            ready()
        await stop.wait()
        log.info("connector_stopping", connector=connector.name)
    log.info("connector_stopped", connector=connector.name)


def main(connector: Connector[S], environ: Mapping[str, str] | None = None) -> None:
    """The process entry point: logging, settings, signals, run; exit 2 on a bad setting."""
    env = dict(os.environ if environ is None else environ)
    configure_logging(connector.process_name, level=env.get("FAASBUS_LOG_LEVEL", "info"))
    try:
        settings = connector.settings(env)
    except SettingsError as exc:
        print(f"{connector.process_name}: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(2)

    def announce() -> None:
        print(f"{connector.process_name} ready", flush=True)  # noqa: T201 - supervisor handshake

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_connector(connector, settings, stop, ready=announce)

    asyncio.run(run())
    sys.stdout.flush()
