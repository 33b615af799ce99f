"""Helpers for SQS connector tests: a real moto server process, queues, and the contract driver.

moto speaks the SQS API on a free loopback port (``moto_server``); the connector reaches it
through ``AWS_ENDPOINT_URL_SQS`` with dummy credentials. Test code talks to it with plain boto3
run in a thread, so the event loop (which serves the test replicas) is never blocked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from faasbus.bus import free_port

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}

# Characters an SQS message body may hold; anything else is sent base64 with an attribute.
_SQS_TEXT = re.compile("^[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*$")


class MotoServer:
    """A ``moto_server`` process on a free port, stopped by its pid."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        executable = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("moto_server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


def client(endpoint: str) -> Any:
    return boto3.client(
        "sqs", endpoint_url=endpoint, region_name=AWS_ENV["AWS_REGION"],
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


def create_queue(endpoint: str, name: str, **attributes: str) -> str:
    if name.endswith(".fifo"):
        attributes.setdefault("FifoQueue", "true")
    url: str = client(endpoint).create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url


def _entry(
    index: int, body: bytes, group: str | None, attributes: dict[str, str]
) -> dict[str, Any]:
    try:
        text = body.decode()
        encoded = _SQS_TEXT.fullmatch(text) is None
    except UnicodeDecodeError:
        encoded = True
    attrs = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
    if encoded:
        text = base64.b64encode(body).decode()
        attrs["Content-Transfer-Encoding"] = {"DataType": "String", "StringValue": "base64"}
    entry: dict[str, Any] = {"Id": str(index), "MessageBody": text}
    if attrs:
        entry["MessageAttributes"] = attrs
    if group is not None:
        entry["MessageGroupId"] = group
    return entry


def send_sync(
    endpoint: str, url: str, bodies: Sequence[bytes], *, group: str | None = None,
    **attributes: str,
) -> list[str]:  # fmt: skip
    """Send in batches of ten; the message ids, in order (FIFO: deduplicated by body)."""
    sqs = client(endpoint)
    ids: list[str] = []
    for start in range(0, len(bodies), 10):
        entries = [
            _entry(i, body, group, attributes) for i, body in enumerate(bodies[start : start + 10])
        ]
        if group is not None:
            for entry in entries:
                entry["MessageDeduplicationId"] = hashlib.sha256(
                    entry["MessageBody"].encode()
                ).hexdigest()
        response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        assert not response.get("Failed"), response.get("Failed")
        by_id = {ok["Id"]: ok["MessageId"] for ok in response["Successful"]}
        ids.extend(by_id[str(i)] for i in range(len(entries)))
    return ids


async def send(endpoint: str, url: str, bodies: Sequence[bytes], **kwargs: Any) -> list[str]:
    return await asyncio.to_thread(send_sync, endpoint, url, bodies, **kwargs)


def queue_counts_sync(endpoint: str, url: str) -> tuple[int, int]:
    """``(visible, in flight)`` messages of a queue."""
    attributes = client(endpoint).get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


async def queue_counts(endpoint: str, url: str) -> tuple[int, int]:
    return await asyncio.to_thread(queue_counts_sync, endpoint, url)


def connector_env(endpoint: str, urls: Sequence[str], **extra: str) -> dict[str, str]:
    return {
        **AWS_ENV, "AWS_ENDPOINT_URL_SQS": endpoint, "queue_url": ",".join(urls),
        "visibility_timeout": "2s", "wait_time": "20s", **extra,
    }  # fmt: skip


@dataclass
class SqsDriver:
    """The contract's driver: each topic is a fresh standard queue on the moto server."""

    endpoint: str
    connector: str = "sqs"
    redelivers: bool = True
    not_redelivering_reason: str = ""
    urls: dict[str, str] = field(default_factory=dict)

    def topic(self, unique: str) -> str:
        name = f"q-{unique}"
        self.urls[name] = create_queue(self.endpoint, name)
        return name

    def env(self) -> dict[str, str]:
        return connector_env(self.endpoint, list(self.urls.values()))

    async def emit(self, topic: str, bodies: Sequence[bytes]) -> None:
        await send(self.endpoint, self.urls[topic], bodies)

    def expected_headers(self, topic: str) -> dict[str, str]:
        return {"X-SQS-Queue-URL": self.urls[topic]}
