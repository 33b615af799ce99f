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
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
from aiohttp import web

from faasbus.bus import (
    Bus,
    BusSettings,
    CallStore,
    Endpoint,
    FunctionCatalog,
    NatsServer,
    NatsServerOptions,
    configure_logging,
    connect,
    declare_bus,
    names,
    put_endpoint,
)
from faasbus.connectors.sdk import (
    ConnectorMetrics,
    ConnectorSettings,
    Publisher,
    SourceEvent,
    TopicMap,
)

NS = names.DEFAULT_NAMESPACE


def start(module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", module], env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if b"ready" not in line:
        raise RuntimeError(f"{module} did not start: {line!r}")
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def deploy(bus: Bus, function: str, topic: str) -> None:
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    record = {"service": function, "namespace": NS, "annotations": {"topic": topic}}
    await kv.put(names.function_key(NS, function), json.dumps(record).encode())


async def stored(bus: Bus, function: str) -> int:
    subject = names.invoke_subject(NS, function)
    info = await bus.js.stream_info(names.INVOKE_STREAM, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


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
    seen = 0
    all_seen = asyncio.Event()

    async def echo(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        if seen >= events:
            all_seen.set()
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kv = await bus.js.key_value(names.ENDPOINTS_BUCKET)
    endpoint = Endpoint(NS, function, "r1", f"http://127.0.0.1:{port}", ready=True)
    await put_endpoint(kv, endpoint)

    async def refresh() -> None:  # an endpoint counts only while refreshed, as a provider does
        while True:
            await asyncio.sleep(BusSettings().endpoint_ttl_s / 3)
            await put_endpoint(kv, endpoint)

    refresher = asyncio.create_task(refresh(), name="endpoint-refresher")
    env = {"FAASBUS_NATS_URL": url}
    processes = [start("faasbus.connectors.nats", env)]
    if worker:
        processes.append(start("faasbus.queue_worker", {**env, "max_inflight": "100"}))
    source = await nats.connect(url)
    try:
        started = time.perf_counter()
        for i in range(events):
            await source.publish(subject, str(i).encode())
        await source.flush()
        if worker:
            await asyncio.wait_for(all_seen.wait(), timeout=300)
        else:
            while await stored(bus, function) < events:
                await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        await source.close()
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        for process in processes:
            stop(process)
        await runner.cleanup()
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
