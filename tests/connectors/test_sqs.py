"""The SQS connector against a real SQS endpoint (a moto server process): the shared contract,
volume, kill -9 with redelivery, FIFO group order, queues subscribed at runtime, settings."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from faasbus.bus import Bus, SettingsError, names
from faasbus.connectors.sqs import SqsSettings, queue_name
from tests.connectors.conftest import StartConnector
from tests.connectors.contract import ConnectorContract
from tests.connectors.helpers import Functions, own_bus
from tests.connectors.sqs_helpers import (
    MotoServer,
    SqsDriver,
    connector_env,
    create_queue,
    queue_counts,
    send,
)
from tests.queue_worker.helpers import Worker

pytestmark = pytest.mark.sqs


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    server = MotoServer()
    yield server.url
    server.stop()


@pytest.mark.slow
class TestSqsContract(ConnectorContract):
    @pytest.fixture
    def driver(self, moto: str) -> SqsDriver:
        return SqsDriver(moto)


def _once_each(bodies: list[bytes], functions: Functions, name: str) -> None:
    calls = functions.of(name)
    ids: dict[bytes, set[str]] = {}
    for call in calls:
        ids.setdefault(call.body, set()).add(call.headers["X-Call-Id"])
    assert set(ids) == set(bodies), "messages were lost"
    assert max(len(found) for found in ids.values()) == 1, "a message ran twice"


async def _queue_for(moto: str, functions: Functions, name: str, suffix: str = "") -> str:
    """A fresh queue (``q-<name><suffix>``) and the function ``name`` subscribed to it; its URL."""
    url = create_queue(moto, f"q-{name}{suffix}")
    await functions.deploy(name, topic=queue_name(url))
    return url


async def _wait_until_empty(moto: str, url: str) -> None:
    """Until the queue holds no message, visible or in flight: all were deleted."""
    deadline = time.monotonic() + 20
    while (counts := await queue_counts(moto, url)) != (0, 0):
        assert time.monotonic() < deadline, f"messages left in the queue: {counts}"
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_two_hundred_messages_each_run_their_function_once(
    moto: str, functions: Functions, worker: Worker, start_connector: StartConnector,
    unique_name: str,
) -> None:  # fmt: skip
    url = await _queue_for(moto, functions, unique_name)
    bodies = [f"message-{i}".encode() for i in range(200)]
    await send(moto, url, bodies)
    started = time.monotonic()
    await start_connector("sqs", **connector_env(moto, [url], visibility_timeout="30s"))
    ready = time.monotonic()
    await functions.wait_calls(unique_name, len(bodies), timeout=90)
    elapsed, drained = time.monotonic() - started, time.monotonic() - ready
    await asyncio.sleep(1.0)  # a duplicate would have run by now
    _once_each(bodies, functions, unique_name)
    await _wait_until_empty(moto, url)
    print(f"200 SQS messages → 200 calls: {elapsed:.2f} s from start, {drained:.2f} s from ready")


@pytest.mark.slow
async def test_a_connector_killed_mid_batch_leaves_messages_that_return_and_run_once(
    moto: str, functions: Functions, worker: Worker, start_connector: StartConnector,
    unique_name: str,
) -> None:  # fmt: skip
    url = await _queue_for(moto, functions, unique_name)
    bodies = [f"kill-{i}".encode() for i in range(100)]
    await send(moto, url, bodies)
    env = connector_env(moto, [url], visibility_timeout="2s")
    first = await start_connector("sqs", **env)
    await functions.wait_calls(unique_name, 1, timeout=30)
    await first.kill()
    visible, in_flight = await queue_counts(moto, url)
    assert visible + in_flight > 0, "the connector finished everything before the kill"
    killed_at = time.monotonic()
    await start_connector("sqs", **env)
    await functions.wait_calls(unique_name, len(bodies), timeout=60)
    await asyncio.sleep(1.0)
    _once_each(bodies, functions, unique_name)
    print(
        f"killed with {visible} waiting + {in_flight} received-undeleted; "
        f"all run {time.monotonic() - killed_at:.2f} s after the kill"
    )


async def test_fifo_hand_off_keeps_the_order_within_each_group(
    moto: str, bus: Bus, functions: Functions, start_connector: StartConnector, unique_name: str
) -> None:
    url = await _queue_for(moto, functions, unique_name, ".fifo")
    published: list[tuple[str, bytes]] = []
    arrived = asyncio.Event()

    async def record(msg: Msg) -> None:
        headers = msg.headers or {}
        group = next((v for k, v in headers.items() if k.endswith("X-SQS-Message-Group-ID")), "")
        published.append((group, msg.data))
        arrived.set()

    # The invocations as JetStream stores them, in publish order (a core subscription sees them).
    subscription = await bus.nc.subscribe(
        names.invoke_subject(names.DEFAULT_NAMESPACE, unique_name), cb=record
    )
    try:
        await bus.nc.flush()
        sent = {g: [f"{g}-{i}".encode() for i in range(12)] for g in ("red", "blue")}
        for start in range(0, 12, 4):  # the groups interleaved in the queue
            for group, bodies in sent.items():
                await send(moto, url, bodies[start : start + 4], group=group)
        await start_connector("sqs", **connector_env(moto, [url], max_messages="10"))
        deadline = time.monotonic() + 30
        while len({body for _, body in published}) < 24:
            assert time.monotonic() < deadline, f"only {len(published)} invocations"
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), timeout=max(deadline - time.monotonic(), 0))
    finally:
        await subscription.unsubscribe()
    for group, bodies in sent.items():
        seen: list[bytes] = []
        for got_group, body in published:
            if got_group == group and body not in seen:
                seen.append(body)
        assert seen == bodies, f"group {group} handed off out of order"


async def test_a_queue_subscribed_at_runtime_is_polled_with_headers_and_attributes(
    moto: str, functions: Functions, worker: Worker, start_connector: StartConnector,
    unique_name: str,
) -> None:  # fmt: skip
    first = create_queue(moto, f"q-{unique_name}-a")
    later = create_queue(moto, f"q-{unique_name}-b")
    await functions.deploy(f"{unique_name}-a", topic=queue_name(first))
    connector = await start_connector("sqs", **connector_env(moto, [first, later]))
    [started] = await connector.wait_event("sqs_source_started")
    assert started["polled"] == [queue_name(first)]

    await functions.deploy(f"{unique_name}-b", topic=queue_name(later))
    await connector.wait_event("sqs_poller_started", timeout=10)
    [message_id] = await send(
        moto, later, [b'{"order": 7}'], **{"Content-Type": "application/json", "tenant": "acme"}
    )
    [call] = await functions.wait_calls(f"{unique_name}-b", 1)
    assert call.body == b'{"order": 7}'
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["X-SQS-Message-ID"] == message_id
    assert call.headers["X-SQS-Queue-URL"] == later
    assert call.headers["X-SQS-Attr-tenant"] == "acme"
    assert call.headers["X-Topic"] == queue_name(later)
    assert call.headers["X-Connector"] == "sqs-connector"
    await _wait_until_empty(moto, later)  # deleted once handed off
    assert Counter(c.function for c in functions.calls)[f"{unique_name}-a"] == 0
    # SIGTERM abandons the long polls at once and exits cleanly.
    stopping = time.monotonic()
    assert await connector.terminate() == 0
    assert time.monotonic() - stopping < 5
    assert connector.events("connector_stopped")


def test_settings_use_the_pro_names_and_the_standard_endpoint_variables() -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
    settings = SqsSettings.from_env({"queue_url": url})
    assert settings.queues == {"orders": url}
    assert (settings.visibility_timeout_s, settings.wait_time_s, settings.max_messages) == (
        30,
        20,
        10,
    )
    assert settings.endpoint_url is None
    both = SqsSettings.from_env({
        "queue_url": f"{url}, http://127.0.0.1:5000/000000000000/jobs.fifo",
        "visibility_timeout": "1m", "wait_time": "5s", "max_messages": "3",
        "AWS_ENDPOINT_URL": "http://generic", "AWS_ENDPOINT_URL_SQS": "http://sqs-only",
        "AWS_DEFAULT_REGION": "eu-west-1",
    })  # fmt: skip
    assert list(both.queues) == ["orders", "jobs.fifo"]
    assert (both.visibility_timeout_s, both.wait_time_s, both.max_messages) == (60, 5, 3)
    assert (both.endpoint_url, both.region) == ("http://sqs-only", "eu-west-1")
    explicit = SqsSettings.from_env(
        {"queue_url": url, "endpoint_url": "http://cli", "AWS_ENDPOINT_URL": "http://generic"}
    )
    assert explicit.endpoint_url == "http://cli"
    for bad in (
        {},
        {"queue_url": "orders"},
        {"queue_url": f"{url},http://other/1/orders"},
        {"queue_url": url, "max_messages": "11"},
        {"queue_url": url, "max_messages": "0"},
        {"queue_url": url, "wait_time": "21s"},
        {"queue_url": url, "visibility_timeout": "0s"},
    ):
        with pytest.raises(SettingsError):
            SqsSettings.from_env(bad)


async def test_a_queue_without_subscribers_keeps_its_messages_until_one_comes(
    moto: str, functions: Functions, worker: Worker, start_connector: StartConnector,
    unique_name: str,
) -> None:  # fmt: skip
    url = await _queue_for(moto, functions, unique_name)
    connector = await start_connector("sqs", **connector_env(moto, [url]))
    await functions.remove(unique_name)
    await connector.wait_event("sqs_poller_stopped", timeout=10)
    await send(moto, url, [b"waits"])
    await asyncio.sleep(2.5)  # more than the visibility timeout: nothing took it
    assert await queue_counts(moto, url) == (1, 0)
    assert functions.of(unique_name) == []
    await functions.deploy(unique_name, topic=queue_name(url))
    [call] = await functions.wait_calls(unique_name, 1, timeout=20)
    assert call.body == b"waits"


@pytest.mark.slow
async def test_a_stuck_hand_off_extends_visibility_then_leaves_the_message_for_later(
    moto: str, start_connector: StartConnector, unique_name: str, tmp_path: Path
) -> None:
    async with own_bus(tmp_path / "bus-store", "sqs-stuck") as own:
        functions = own.functions
        url = await _queue_for(moto, functions, unique_name)
        own.start_worker(max_inflight="10")
        connector = await start_connector(
            "sqs", url=own.server.url,
            **connector_env(moto, [url], FAASBUS_SQS_HANDOFF_TIMEOUT="3s"),
        )  # fmt: skip
        own.server.stop()
        await send(moto, url, [b"stuck"])
        await connector.wait_event("sqs_visibility_extended", timeout=20)
        [timed_out] = await connector.wait_event("sqs_handoff_timed_out", timeout=20)
        assert timed_out["left"] == 1
        assert functions.of(unique_name) == []
        assert sum(await queue_counts(moto, url)) == 1, "the message was deleted"
        own.server.start()
        [call] = await functions.wait_calls(unique_name, 1, timeout=60)
        assert call.body == b"stuck"
        await asyncio.sleep(1.0)
        assert len(functions.of(unique_name)) == 1
