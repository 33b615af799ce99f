"""Benchmark of the SQS connector on moto: messages/s from a queue to invocations on the bus.

Starts its own nats-server and ``moto_server``, and measures, in one run, with N messages of
100 bytes already in a standard queue each time:

1. baseline: one plain aioboto3 loop draining the queue (receive 10, long poll, delete batch) —
   what one poller can get out of this SQS endpoint at all;
2. the SQS connector process (``python -m faasbus.connectors.sqs``, no worker running): until
   FAAS_INVOKE holds all N invocations and the queue is empty (every message deleted).

moto is slow (~20 ms a round trip on this machine), so both numbers are moto's more than ours: the
ratio says how much of the endpoint's rate the connector keeps.

Usage: .venv/bin/python bench/sqs.py [--messages 500]
Prints a table; stops everything it started (by pid).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aioboto3
from common import NS, deploy, stop_process, stored

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

AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return process, f"http://127.0.0.1:{port}"
    process.kill()
    raise RuntimeError("moto_server did not start")


async def fill(sqs: Any, name: str, messages: int) -> str:
    url: str = (await sqs.create_queue(QueueName=name))["QueueUrl"]
    for start in range(0, messages, 10):
        entries = [
            {"Id": str(i), "MessageBody": f"{start + i:0100d}"}
            for i in range(min(10, messages - start))
        ]
        await sqs.send_message_batch(QueueUrl=url, Entries=entries)
    return url


async def baseline(sqs: Any, messages: int) -> float:
    url = await fill(sqs, "bench-baseline", messages)
    done = 0
    started = time.perf_counter()
    while done < messages:
        got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        batch = got.get("Messages", [])
        if batch:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ]
            await sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            done += len(batch)
    return messages / (time.perf_counter() - started)


async def connector(
    bus: Bus, sqs: Any, nats_url: str, endpoint: str, messages: int, batches: int
) -> float:
    queue = f"bench-connector-{batches}"
    url = await fill(sqs, queue, messages)
    await deploy(bus, "sqs-bench", queue)
    await bus.js.purge_stream(names.INVOKE_STREAM, subject=names.invoke_subject(NS, "sqs-bench"))
    env = {**os.environ, **AWS, "FAASBUS_NATS_URL": nats_url, "AWS_ENDPOINT_URL_SQS": endpoint,
           "queue_url": url, "FAASBUS_LOG_LEVEL": "warning",
           "FAASBUS_SQS_MAX_BATCHES": str(batches)}  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "faasbus.connectors.sqs"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        if b"ready" not in process.stdout.readline():
            raise RuntimeError("the SQS connector did not start")
        ready = time.perf_counter()
        while True:
            names_ = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            got = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names_)
            attributes = got["Attributes"]
            left = sum(int(v) for v in attributes.values())
            if left == 0 and await stored(bus, "sqs-bench") >= messages:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - ready
    finally:
        stop_process(process)
    print(f"(connector start-up: {ready - started:.2f} s, not counted)")
    return messages / elapsed


async def main(messages: int) -> None:
    moto, endpoint = start_moto()
    try:
        with tempfile.TemporaryDirectory() as store:
            server = NatsServer(NatsServerOptions(store_dir=Path(store))).start()
            try:
                settings = BusSettings(nats_url=server.url)
                async with await connect(settings, name="bench") as bus:
                    await declare_bus(bus.js, settings)
                    session = aioboto3.Session(
                        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
                        region_name=AWS["AWS_REGION"],
                    )
                    async with session.client("sqs", endpoint_url=endpoint) as sqs:
                        raw = await baseline(sqs, messages)
                        one = await connector(bus, sqs, server.url, endpoint, messages, 1)
                        ours = await connector(bus, sqs, server.url, endpoint, messages, 4)
            finally:
                server.stop()
    finally:
        stop_process(moto)
    print(f"{'measure':<60} {'messages/s':>10}")
    print(f"{'baseline: one aioboto3 loop, receive 10 + delete batch':<60} {raw:>10.0f}")
    for label, rate in (("1 batch at a time", one), ("4 batches at once (default)", ours)):
        print(f"{'SQS connector, ' + label:<60} {rate:>10.0f}")
    print(f"connector / baseline: {one / raw:.2f} (1 batch), {ours / raw:.2f} (4 batches)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    configure_logging("bench", level="warning")
    asyncio.run(main(parser.parse_args().messages))
