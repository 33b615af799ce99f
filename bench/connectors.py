"""Benchmark of the connector SDK and the NATS connector: events/s handed to the bus.

Starts its own nats-server, and measures, in one run:

1. SDK hand-off in process: ``Publisher.hand_off`` of N events (one function per topic), one at a
   time and 256 at once, with and without the ``queued`` call record per invocation — the
   ceiling a Kafka or SQS source built on the SDK can reach;
2. NATS connector hand-off: N core NATS messages published to a subject, until FAAS_INVOKE holds
   all N invocations (a real ``python -m faasbus.connectors.nats`` process, no worker running);
3. completed: the same through a queue worker to an echo replica (aiohttp, in this process),
   until the replica has seen all N.

Usage: .venv/bin/python bench/connectors.py [--events 5000]
Prints a table; stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import nats
from common import NS, EchoReplica, deploy, start_service, stop_process, stored

from faasbus.bus import (
    Bus,
    BusSettings,
    CallStore,
    FunctionCatalog,
    NatsServer,
    NatsServerOptions,
    configure_logging,
    connect,
    declare_bus,
    names,
)
from faasbus.connectors.sdk import (
    ConnectorMetrics,
    ConnectorSettings,
    Publisher,
    SourceEvent,
    TopicMap,
)


async def sdk_handoff(bus: Bus, events: int, concurrency: int, record: bool, tag: str) -> float:
    function, topic = f"sdk-{tag}", f"sdk-topic-{tag}"
    await deploy(bus, function, topic)
    settings = ConnectorSettings(record_calls=record)
    async with FunctionCatalog(bus) as catalog:
        topics = TopicMap(catalog)
        while not topics.functions_for(topic):
            await asyncio.sleep(0.01)
        async with Publisher(
            connector="bench", bus=bus, topics=topics, calls=await CallStore.open(bus.js),
            metrics=ConnectorMetrics(), settings=settings,
        ) as publisher:  # fmt: skip
            slots = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with slots:
                    await publisher.hand_off(SourceEvent(topic, b"x" * 100, event_id=str(i)))

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(events)))
            elapsed = time.perf_counter() - started
    assert await stored(bus, function) == events
    await bus.js.purge_stream(names.INVOKE_STREAM, subject=names.invoke_subject(NS, function))
    return events / elapsed


async def nats_connector(bus: Bus, url: str, events: int, *, worker: bool) -> float:
    tag = "done" if worker else "handoff"
    function, subject = f"nats-{tag}", f"bench.{tag}"
    await deploy(bus, function, subject)
    env = {"FAASBUS_NATS_URL": url}
    async with EchoReplica(bus, function, events) as replica:
        processes = [start_service("faasbus.connectors.nats", env)]
        if worker:
            processes.append(start_service("faasbus.queue_worker", {**env, "max_inflight": "100"}))
        source = await nats.connect(url)
        try:
            started = time.perf_counter()
            for i in range(events):
                await source.publish(subject, str(i).encode())
            await source.flush()
            if worker:
                await asyncio.wait_for(replica.all_seen.wait(), timeout=300)
            else:
                while await stored(bus, function) < events:
                    await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            await source.close()
            for process in processes:
                stop_process(process)
    await bus.js.purge_stream(names.INVOKE_STREAM, subject=names.invoke_subject(NS, function))
    return events / elapsed


async def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as store:
        server = NatsServer(NatsServerOptions(store_dir=Path(store))).start()
        try:
            settings = BusSettings(nats_url=server.url)
            async with await connect(settings, name="bench") as bus:
                await declare_bus(bus.js, settings)
                rows = [
                    ("SDK hand-off, 1 at a time, call records",
                     await sdk_handoff(bus, events // 5, 1, record=True, tag="a")),
                    ("SDK hand-off, 256 at once, call records",
                     await sdk_handoff(bus, events, 256, record=True, tag="b")),
                    ("SDK hand-off, 256 at once, no call records",
                     await sdk_handoff(bus, events, 256, record=False, tag="c")),
                    ("NATS connector: publish -> on FAAS_INVOKE",
                     await nats_connector(bus, server.url, events, worker=False)),
                    ("NATS connector + 1 queue worker: publish -> echo ran",
                     await nats_connector(bus, server.url, events, worker=True)),
                ]  # fmt: skip
        finally:
            server.stop()
    print(f"{'measure':<56} {'events/s':>10}")
    for label, rate in rows:
        print(f"{label:<56} {rate:>10.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    configure_logging("bench", level="warning")
    asyncio.run(main(parser.parse_args().events))
