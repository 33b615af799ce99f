"""The Kafka connector against a real Kafka-protocol broker (tansu, started here): the shared
contract, exactly-once runs over partitions, crash and group behaviour, runtime subscriptions."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from faasbus.bus import (
    Bus,
    BusSettings,
    Invocation,
    NatsServer,
    NatsServerOptions,
    SettingsError,
    connect,
    declare_bus,
    names,
)
from faasbus.connectors.kafka import KafkaSettings, record_event
from faasbus.connectors.kafka.lanes import Lane
from faasbus.connectors.sdk import Handoff, Sent, SourceEvent
from tests.connectors.conftest import StartConnector
from tests.connectors.contract import ConnectorContract
from tests.connectors.helpers import Call, Functions
from tests.connectors.kafka_helpers import Tansu, committed, create_topic, produce
from tests.queue_worker.helpers import Worker

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def kafka() -> Iterator[Tansu]:
    broker = Tansu().start()
    yield broker
    broker.stop()


@dataclass
class KafkaDriver:
    """Produces to Kafka topics on the module's tansu; one consumer group per test."""

    brokers: str
    group: str
    connector: str = "kafka"
    redelivers: bool = True
    not_redelivering_reason: str = ""

    def topic(self, unique: str) -> str:
        # Created now (the contract asks synchronously), as an operator creates topics first.
        name = f"t-{unique}"
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, create_topic(self.brokers, name)).result(timeout=30)
        return name

    def env(self) -> dict[str, str]:
        return {
            "broker_hosts": self.brokers, "group": self.group,
            "FAASBUS_KAFKA_SESSION_TIMEOUT": "6s", "FAASBUS_KAFKA_METADATA_MAX_AGE": "1s",
        }  # fmt: skip

    async def emit(self, topic: str, bodies: Sequence[bytes]) -> None:
        await produce(self.brokers, topic, [(None, body, ()) for body in bodies])

    def expected_headers(self, topic: str) -> dict[str, str]:
        return {"X-Kafka-Topic": topic}


class TestKafkaContract(ConnectorContract):
    @pytest.fixture
    def driver(self, kafka: Tansu, unique_name: str) -> KafkaDriver:
        return KafkaDriver(kafka.brokers, group=f"g-{unique_name}")


def _keys(calls: Sequence[Call]) -> Counter[str]:
    return Counter(call.headers["X-Kafka-Key"] for call in calls)


def _call_ids_per_key(calls: Sequence[Call]) -> Counter[str]:
    """Distinct call ids per key (a worker's own retry of one call keeps its id)."""
    return Counter(
        key for key, _ in {(c.headers["X-Kafka-Key"], c.headers["X-Call-Id"]) for c in calls}
    )


def _records(
    prefix: str, count: int
) -> list[tuple[bytes | None, bytes, tuple[tuple[str, bytes], ...]]]:
    return [(f"{prefix}-{i}".encode(), f"body-{i}".encode(), ()) for i in range(count)]


@pytest.mark.usefixtures("worker")
async def test_5000_records_over_4_partitions_each_run_exactly_once(
    kafka: Tansu, functions: Functions, start_connector: StartConnector, unique_name: str
) -> None:
    topic, count = f"t-{unique_name}", 5000
    await create_topic(kafka.brokers, topic, partitions=4)
    await functions.deploy(unique_name, topic=topic)
    # Default settings: a pipelined window per partition, call records on.
    await start_connector("kafka", broker_hosts=kafka.brokers, group=f"g-{unique_name}")
    await produce(kafka.brokers, topic, _records("k", count))
    await functions.wait_calls(unique_name, count, timeout=100)
    await asyncio.sleep(1.0)  # a duplicate would have run by now
    calls = functions.of(unique_name)
    keys = _keys(calls)
    assert len(keys) == count, "records were lost"
    assert set(keys.values()) == {1}, "a record ran twice"
    assert {c.headers["X-Kafka-Partition"] for c in calls} == {"0", "1", "2", "3"}


@pytest.mark.usefixtures("worker")
async def test_a_connector_killed_mid_stream_and_restarted_loses_and_repeats_nothing(
    kafka: Tansu, functions: Functions, start_connector: StartConnector, unique_name: str
) -> None:
    topic, count = f"t-{unique_name}", 2000
    env = {"broker_hosts": kafka.brokers, "group": f"g-{unique_name}",
           "FAASBUS_KAFKA_SESSION_TIMEOUT": "6s"}  # fmt: skip
    await create_topic(kafka.brokers, topic, partitions=4)
    await functions.deploy(unique_name, topic=topic)
    await produce(kafka.brokers, topic, _records("k", count))
    first = await start_connector("kafka", **env)
    await functions.wait_calls(unique_name, 200, timeout=60)
    await first.kill()
    assert len(functions.of(unique_name)) < count, "the stream ended before the kill"
    await start_connector("kafka", **env)
    await functions.wait_calls(unique_name, count, timeout=90)
    await asyncio.sleep(1.0)
    calls = functions.of(unique_name)
    assert set(_keys(calls)) == {f"k-{i}" for i in range(count)}, "records were lost"
    assert set(_call_ids_per_key(calls).values()) == {1}, "a record ran twice"


@pytest.mark.usefixtures("worker")
async def test_two_connectors_share_a_group_and_one_survives_the_others_death(
    kafka: Tansu, functions: Functions, start_connector: StartConnector, unique_name: str
) -> None:
    topic = f"t-{unique_name}"
    env = {"broker_hosts": kafka.brokers, "group": f"g-{unique_name}",
           "FAASBUS_KAFKA_SESSION_TIMEOUT": "6s"}  # fmt: skip
    await create_topic(kafka.brokers, topic, partitions=4)
    await functions.deploy(unique_name, topic=topic)
    first = await start_connector("kafka", **env)
    second = await start_connector("kafka", **env)

    def owned(connector_log: list[dict[str, object]]) -> set[str]:
        latest = connector_log[-1]["partitions"] if connector_log else []
        return set(latest)  # type: ignore[call-overload]

    # Both members get a share of the four partitions.
    for _ in range(300):
        a = owned(first.events("kafka_partitions_assigned"))
        b = owned(second.events("kafka_partitions_assigned"))
        if a and b and not a & b and len(a | b) == 4:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the group never split the partitions: {a} / {b}")
    await produce(kafka.brokers, topic, _records("a", 400))
    await functions.wait_calls(unique_name, 400, timeout=60)

    # One dies (kill -9): after the session timeout the other takes every partition.
    await first.kill()
    await produce(kafka.brokers, topic, _records("b", 400))
    await functions.wait_calls(unique_name, 800, timeout=60)
    await asyncio.sleep(1.0)
    calls = functions.of(unique_name)
    assert len(_keys(calls)) == 800
    assert set(_call_ids_per_key(calls).values()) == {1}
    assert len(owned(second.events("kafka_partitions_assigned"))) == 4


@pytest.mark.usefixtures("worker")
async def test_a_topic_added_to_a_function_at_runtime_starts_flowing(
    kafka: Tansu, functions: Functions, start_connector: StartConnector, unique_name: str
) -> None:
    old, new = f"t-{unique_name}-old", f"t-{unique_name}-new"
    await create_topic(kafka.brokers, old)
    await create_topic(kafka.brokers, new)
    await functions.deploy(unique_name, topic=old)
    connector = await start_connector("kafka", broker_hosts=kafka.brokers, group=f"g-{unique_name}")
    await produce(kafka.brokers, new, [(b"early", b"before the subscription", ())])
    await functions.deploy(unique_name, topic=f"{old}, {new}")
    await connector.wait_event("kafka_subscribed")
    for _ in range(200):
        if any(new in entry["topics"] for entry in connector.events("kafka_subscribed")):
            break
        await asyncio.sleep(0.05)
    await produce(kafka.brokers, new, [(b"late", b"after", ())])
    calls = await functions.wait_calls(unique_name, 2, timeout=60)
    # initial_offset=oldest: the new topic is read from its start.
    assert sorted(c.headers["X-Kafka-Key"] for c in calls) == ["early", "late"]
    assert {c.headers["X-Topic"] for c in calls} == {new}


async def test_headers_keys_and_content_type_reach_the_function(
    kafka: Tansu, functions: Functions, worker: Worker, start_connector: StartConnector,
    unique_name: str,
) -> None:  # fmt: skip
    topic = f"t-{unique_name}"
    await create_topic(kafka.brokers, topic)
    await functions.deploy(unique_name, topic=topic)
    connector = await start_connector("kafka", broker_hosts=kafka.brokers, group=f"g-{unique_name}")
    await produce(kafka.brokers, topic, [
        (b"order-1", b'{"id": 1}', (("content-type", b"application/json"), ("tenant", b"acme"))),
        (b"\x00\xff", b"binary key", (("raw", b"\x01\x02"),)),
    ])  # fmt: skip
    calls = await functions.wait_calls(unique_name, 2)
    by_body = {c.body: c for c in calls}
    text = by_body[b'{"id": 1}'].headers
    assert text["Content-Type"] == "application/json"
    assert text["X-Kafka-Key"] == "order-1"
    assert "X-Kafka-Key-Enc" not in text
    assert text["X-Kafka-Tenant"] == "acme"
    assert (text["X-Kafka-Topic"], text["X-Kafka-Partition"], text["X-Kafka-Offset"]) == (
        topic,
        "0",
        "0",
    )
    binary = by_body[b"binary key"].headers
    assert binary["X-Kafka-Key"] == base64.b64encode(b"\x00\xff").decode()
    assert binary["X-Kafka-Key-Enc"] == "b64"
    assert binary["X-Kafka-Raw"] == base64.b64encode(b"\x01\x02").decode()
    assert binary["X-Kafka-Offset"] == "1"
    assert binary["Content-Type"] == "text/plain"
    # SIGTERM: a clean exit, with the offset after the last handed-off record committed.
    assert await connector.terminate() == 0
    assert await committed(kafka.brokers, f"g-{unique_name}", topic, 0) == 2


async def _subscribe(bus: Bus, function: str, topic: str) -> None:
    """Store ``function`` subscribed to ``topic``, as the provider would."""
    functions = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    record = {"service": function, "namespace": names.DEFAULT_NAMESPACE,
              "annotations": {"topic": topic}}  # fmt: skip
    key = names.function_key(names.DEFAULT_NAMESPACE, function)
    await functions.put(key, json.dumps(record).encode())


def _offsets_by_partition(seen: list[Invocation]) -> dict[str, list[int]]:
    """The Kafka offsets of ``seen`` per partition, in the order they were stored."""
    offsets: dict[str, list[int]] = {}
    for inv in seen:
        found = dict(inv.headers)
        offsets.setdefault(found["X-Kafka-Partition"], []).append(int(found["X-Kafka-Offset"]))
    return offsets


@pytest.mark.parametrize("window", ["1", "default"])
async def test_invocations_of_a_partition_reach_the_bus_in_offset_order(
    kafka: Tansu, start_connector: StartConnector, unique_name: str, tmp_path: Path, window: str
) -> None:
    # "default": the pipelined default window (several records of a partition in flight).
    # Its own bus and no worker: FAAS_INVOKE keeps the invocations in the order they arrived.
    server = NatsServer(NatsServerOptions(store_dir=tmp_path / "bus")).start()
    try:
        settings = BusSettings(nats_url=server.url, connect_wait_s=10)
        async with await connect(settings, name="order-test") as bus:
            await declare_bus(bus.js, settings)
            topic, count = f"t-{unique_name}", 400
            await create_topic(kafka.brokers, topic, partitions=2)
            await _subscribe(bus, unique_name, topic)
            await produce(kafka.brokers, topic, _records("k", count))
            windowed = {} if window == "default" else {"FAASBUS_KAFKA_PARTITION_WINDOW": window}
            await start_connector("kafka", url=server.url, broker_hosts=kafka.brokers,
                                  group=f"g-{unique_name}", **windowed)  # fmt: skip
            subject = names.invoke_subject(names.DEFAULT_NAMESPACE, unique_name)
            seen = await _stored_invocations(bus, subject, f"order-{unique_name}", count=count)
    finally:
        server.stop()
    offsets = _offsets_by_partition(seen)
    assert sorted(offsets) == ["0", "1"]
    for partition in offsets.values():
        assert partition == list(range(len(partition))), "out of offset order"
    assert sum(map(len, offsets.values())) == count


async def _stored_invocations(
    bus: Bus, subject: str, durable: str, *, count: int | None = None
) -> list[Invocation]:
    """The invocations stored under ``subject``, acked as read: ``count`` of them (waiting for
    each up to 30 s), or without ``count`` all there are (until 2 s pass without one)."""
    sub = await bus.js.pull_subscribe(subject, durable=durable)
    seen: list[Invocation] = []
    until_empty = contextlib.suppress(TimeoutError) if count is None else contextlib.nullcontext()
    with until_empty:
        while count is None or len(seen) < count:
            for msg in await sub.fetch(500, timeout=2 if count is None else 30):
                seen.append(Invocation.from_message(msg.headers, msg.data))
                await msg.ack()
    return seen


async def _stored_count(bus: Bus, subject: str) -> int:
    info = await bus.js.stream_info(names.INVOKE_STREAM, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def test_publishes_lost_with_the_bus_mid_window_are_republished_once_each(
    kafka: Tansu, start_connector: StartConnector, unique_name: str, tmp_path: Path
) -> None:
    """The bus restarts while windows of publishes are in flight: the lost ones time out and are
    republished; FAAS_INVOKE ends with every record exactly once (Nats-Msg-Id dedupe), no record
    overtaken by one a window or more after it, and every offset committed."""
    store = tmp_path / "bus"
    server = NatsServer(NatsServerOptions(store_dir=store)).start()
    topic, count, window = f"t-{unique_name}", 3000, KafkaSettings().partition_window
    subject = names.invoke_subject(names.DEFAULT_NAMESPACE, unique_name)
    try:
        settings = BusSettings(nats_url=server.url, connect_wait_s=10)
        async with await connect(settings, name="republish-test") as bus:
            await declare_bus(bus.js, settings)
            await create_topic(kafka.brokers, topic, partitions=2)
            await _subscribe(bus, unique_name, topic)
        await produce(kafka.brokers, topic, _records("k", count))
        connector = await start_connector(
            "kafka", url=server.url, broker_hosts=kafka.brokers, group=f"g-{unique_name}",
            FAASBUS_PUBLISH_TIMEOUT="1s", FAASBUS_PUBLISH_RETRY_MAX="500ms",
        )  # fmt: skip
        async with await connect(settings, name="republish-test") as bus:
            for _ in range(600):
                if await _stored_count(bus, subject) >= 200:
                    break
                await asyncio.sleep(0.02)
        # Mid-stream: the server goes away with publishes in flight, and comes back (same
        # port, same store) only once the connector noticed that publishes fail.
        server.stop()
        await connector.wait_event("bus_publish_failing", timeout=30)
        server = NatsServer(NatsServerOptions(store_dir=store, port=server.port)).start()
        await connector.wait_event("kafka_lane_republished", timeout=30)
        async with await connect(settings, name="republish-test") as bus:
            for _ in range(1500):
                if await _stored_count(bus, subject) >= count:
                    break
                await asyncio.sleep(0.02)
            assert await connector.terminate() == 0
            seen = await _stored_invocations(bus, subject, f"check-{unique_name}")
    finally:
        server.stop()
    offsets = _offsets_by_partition(seen)
    assert sum(map(len, offsets.values())) == count, "a record was lost or stored twice"
    for partition, stored in offsets.items():
        assert sorted(stored) == list(range(len(stored))), f"partition {partition}"
        highest = -1
        for offset in stored:
            assert highest < offset + window, f"{offset} overtaken by {highest} in {partition}"
            highest = max(highest, offset)
        assert await committed(kafka.brokers, f"g-{unique_name}", topic, int(partition)) == len(
            stored
        )


@dataclass
class _Record:
    offset: int


async def test_a_lane_sends_nothing_new_after_a_republish_until_its_window_is_confirmed() -> None:
    trace: list[tuple[str, int]] = []

    async def send(record: _Record) -> Sent:
        trace.append(("send", record.offset))
        return Sent(SourceEvent("t", event_id=str(record.offset)), (), (), 0.0)

    async def confirm(sent: Sent) -> Handoff:
        offset = int(sent.event.event_id)
        trace.append(("confirm", offset))
        await asyncio.sleep(0)
        return Handoff(sent.event, (), republished=1 if offset == 2 else 0)

    freed: list[int] = []
    lane = Lane("t/0", send, confirm, window=4, freed=freed.append)
    lane.feed([_Record(i) for i in range(10)])
    for _ in range(1000):
        if lane.committable == 10:
            break
        await asyncio.sleep(0)
    await lane.drain(1.0)
    assert lane.committable == 10
    assert sum(freed) == 10
    assert [o for kind, o in trace if kind == "send"] == list(range(10))
    assert [o for kind, o in trace if kind == "confirm"] == list(range(10))
    # Up to 4 sent before the first confirmation; after record 2 was republished, the records
    # already sent (3, 4, 5) are all confirmed before anything new is sent.
    assert trace[:5] == [("send", 0), ("send", 1), ("send", 2), ("send", 3), ("confirm", 0)]
    after = trace[trace.index(("confirm", 2)) + 1 :]
    assert after[:4] == [("confirm", 3), ("confirm", 4), ("confirm", 5), ("send", 6)]


def test_record_ids_come_from_topic_partition_and_offset() -> None:
    one = record_event("orders", 3, 42, key=None, value=None, headers=[])
    assert one.event_id == "orders/3/42"
    assert one.body == b""
    assert record_event("orders", 3, 42, key=b"k", value=b"v", headers=[]).event_id == one.event_id
    assert ("X-Kafka-Key", "k") not in one.headers


def test_settings_use_the_pro_names_and_name_a_bad_value(tmp_path: Path) -> None:
    settings = KafkaSettings.from_env({"broker_hosts": "a:9092, b:9092", "topics": "x,y"})
    assert settings.broker_hosts == ("a:9092", "b:9092")
    assert settings.group == "faas-group-1"
    assert settings.initial_offset == "oldest"
    assert settings.security_protocol == "PLAINTEXT"
    with pytest.raises(SettingsError, match="broker_hosts"):
        KafkaSettings.from_env({})
    with pytest.raises(SettingsError, match="initial_offset"):
        KafkaSettings.from_env({"broker_hosts": "a:1", "initial_offset": "middle"})
    with pytest.raises(SettingsError, match="topics"):
        KafkaSettings.from_env({"broker_hosts": "a:1", "topics": "a b"})
    with pytest.raises(SettingsError, match="sasl_username_file"):
        KafkaSettings.from_env({"broker_hosts": "a:1", "sasl_mechanism": "plain"})
    with pytest.raises(SettingsError, match="ca_file"):
        KafkaSettings.from_env({"broker_hosts": "a:1", "ca_file": "/nonexistent/ca.pem"})
    (tmp_path / "user").write_text("alice\n")
    (tmp_path / "pass").write_text("s3cret\n")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    secure = KafkaSettings.from_env({
        "broker_hosts": "a:1", "sasl_mechanism": "scram-sha-512",
        "sasl_username_file": str(tmp_path / "user"), "sasl_password_file": str(tmp_path / "pass"),
        "ca_file": str(tmp_path / "ca.pem"), "initial_offset": "newest", "max_bytes": "65536",
    })  # fmt: skip
    assert (secure.sasl_mechanism, secure.sasl_username, secure.sasl_password) == (
        "SCRAM-SHA-512", "alice", "s3cret",
    )  # fmt: skip
    assert secure.security_protocol == "SASL_SSL"
    assert (secure.initial_offset, secure.max_bytes) == ("newest", 65536)
    assert "s3cret" not in repr(secure)
