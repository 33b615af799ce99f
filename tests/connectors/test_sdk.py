"""The connector SDK in process: topic map, ids, publisher, settings — on the real bus."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from faasbus.bus import (
    Bus,
    CallStore,
    FunctionCatalog,
    SettingsError,
    is_valid_call_id,
    names,
)
from faasbus.connectors.sdk import (
    ConnectorMetrics,
    ConnectorSettings,
    FunctionRef,
    Publisher,
    SourceEvent,
    TopicMap,
    build_topic_map,
    invocation_ids,
    parse_topics,
)

NS = names.DEFAULT_NAMESPACE


def test_topic_annotations_are_split_trimmed_and_matched_exactly() -> None:
    assert parse_topics(" a, b ,,a , c.d ") == ("a", "b", "c.d")
    assert parse_topics("") == ()
    one, two = FunctionRef(NS, "one"), FunctionRef(NS, "two")
    routes = build_topic_map([(one, {"topic": "orders, audit"}), (two, {"topic": "orders"}),
                              (FunctionRef(NS, "none"), {})])  # fmt: skip
    assert routes == {"orders": (one, two), "audit": (one,)}
    assert "Orders" not in routes


def test_ids_are_derived_from_the_event_and_the_function() -> None:
    one, two = FunctionRef(NS, "one"), FunctionRef("other-ns", "one")
    msg_id, call_id = invocation_ids("kafka", "t/3/1234", one)
    assert msg_id == f"kafka:t/3/1234:{NS}.one"
    assert invocation_ids("kafka", "t/3/1234", one) == (msg_id, call_id)
    assert invocation_ids("kafka", "t/3/1234", two)[1] != call_id
    assert invocation_ids("sqs", "t/3/1234", one)[1] != call_id
    long_msg, long_call = invocation_ids("sqs", "x" * 500, one)
    assert len(long_msg) < 120
    assert is_valid_call_id(call_id)
    assert is_valid_call_id(long_call)
    assert SourceEvent("t").event_id != SourceEvent("t").event_id  # no id: a random one each


def test_settings_use_openfaas_names_and_name_a_bad_value() -> None:
    settings = ConnectorSettings.from_env(
        {"topics": "a, b", "content_type": "application/json", "print_response": "true",
         "upstream_timeout": "1m30s", "rebuild_interval": "10s",
         "asynchronous_invocation": "false"}
    )  # fmt: skip
    assert settings.topics == ("a", "b")
    assert settings.content_type == "application/json"
    assert settings.print_response is True
    assert settings.upstream_timeout_s == 90.0
    assert settings.rebuild_interval_s == 10.0
    assert settings.asynchronous_invocation is False  # accepted, then ignored with a warning
    with pytest.raises(SettingsError, match="rebuild_interval"):
        ConnectorSettings.from_env({"rebuild_interval": "often"})
    with pytest.raises(SettingsError, match="FAASBUS_METRICS_PORT"):
        ConnectorSettings.from_env({"FAASBUS_METRICS_PORT": "-1"})


async def _deploy(bus: Bus, name: str, topic: str) -> None:
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    record = {"service": name, "namespace": NS, "annotations": {"topic": topic}, "labels": {},
              "envVars": {}, "replicas": 1}  # fmt: skip
    await kv.put(names.function_key(NS, name), json.dumps(record).encode())


async def _remove(bus: Bus, name: str) -> None:
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    await kv.delete(names.function_key(NS, name))


async def _until(check: object, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
async def catalog(bus: Bus) -> AsyncIterator[FunctionCatalog]:
    async with FunctionCatalog(bus, resync_s=60) as live:
        yield live


async def test_the_topic_map_follows_deploys_updates_and_deletes_within_a_second(
    bus: Bus, catalog: FunctionCatalog, unique_name: str
) -> None:
    topics = TopicMap(catalog)
    changes: list[int] = []
    topics.on_change(lambda: changes.append(1))
    ref = FunctionRef(NS, unique_name)
    try:
        await _deploy(bus, unique_name, f"{unique_name}-a, {unique_name}-b")
        assert await _until(lambda: topics.functions_for(f"{unique_name}-b") == (ref,)) < 1.0
        await _deploy(bus, unique_name, f"{unique_name}-c")
        assert await _until(lambda: topics.functions_for(f"{unique_name}-c") == (ref,)) < 1.0
        assert topics.functions_for(f"{unique_name}-a") == ()
        await _remove(bus, unique_name)
        assert await _until(lambda: not topics.functions_for(f"{unique_name}-c")) < 1.0
        assert len(changes) >= 3
    finally:
        await _remove(bus, unique_name)


@pytest.fixture
async def publisher(bus: Bus, catalog: FunctionCatalog) -> AsyncIterator[Publisher]:
    settings = ConnectorSettings(content_type="text/plain")
    async with Publisher(
        connector="test", bus=bus, topics=TopicMap(catalog), calls=await CallStore.open(bus.js),
        metrics=ConnectorMetrics(), settings=settings,
    ) as created:  # fmt: skip
        yield created


async def test_one_event_becomes_one_acked_invocation_per_function_once(
    bus: Bus, catalog: FunctionCatalog, publisher: Publisher, unique_name: str
) -> None:
    first, second = f"{unique_name}-a", f"{unique_name}-b"
    topic = f"topic-{unique_name}"
    try:
        await _deploy(bus, first, topic)
        await _deploy(bus, second, f"x, {topic}")
        await _until(lambda: len(publisher._topics.functions_for(topic)) == 2)
        event = SourceEvent(topic, b"payload", event_id="e-1", headers=(("X-Extra", "1"),))
        handoff = await publisher.hand_off(event)
        assert [i.function for i in handoff.invocations] == [first, second]
        assert handoff.duplicates == 0
        store = await CallStore.open(bus.js)
        for inv in handoff.invocations:
            msg = await bus.js.get_last_msg(names.INVOKE_STREAM, inv.subject)
            assert msg.data == b"payload"
            headers = msg.headers or {}
            assert headers["Nats-Msg-Id"] == f"test:e-1:{NS}.{inv.function}"
            assert headers["Faas-Source"] == "test"
            assert headers["Faas-Topic"] == topic
            assert headers["Faas-Content-Type"] == "text/plain"
            assert headers["Faas-H-X-Topic"] == topic
            assert headers["Faas-H-X-Connector"] == "test-connector"
            assert headers["Faas-H-X-Extra"] == "1"
            record = await store.get(inv.call_id)
            assert record is not None
            assert (record.state.value, record.source, record.stream_seq) == (
                "queued", "test", msg.seq,
            )  # fmt: skip
        # The same source event again (a redelivery): dropped by the bus as duplicates.
        again = await publisher.hand_off(event)
        assert again.duplicates == 2
        assert [i.call_id for i in again.invocations] == [i.call_id for i in handoff.invocations]
        # An event nobody subscribes to is handed off as nothing.
        assert not (await publisher.hand_off(SourceEvent(f"nobody-{unique_name}"))).routed
    finally:
        for name in (first, second):
            await _remove(bus, name)
            await bus.js.purge_stream(names.INVOKE_STREAM, subject=names.invoke_subject(NS, name))


async def test_send_then_confirm_publishes_in_order_and_records_written_waits_for_the_records(
    bus: Bus, catalog: FunctionCatalog, publisher: Publisher, unique_name: str
) -> None:
    topic = f"topic-{unique_name}"
    subject = names.invoke_subject(NS, unique_name)
    try:
        await _deploy(bus, unique_name, topic)
        await _until(lambda: bool(publisher._topics.functions_for(topic)))
        events = [SourceEvent(topic, f"body-{i}".encode(), event_id=f"p/{i}") for i in range(50)]
        sent = [await publisher.send(event) for event in events]  # no ack awaited in between
        handoffs = [await publisher.confirm(one) for one in sent]
        assert all(h.duplicates == 0 and h.republished == 0 for h in handoffs)
        call_ids = [h.invocations[0].call_id for h in handoffs]
        # The queued records follow in the background; records_written() waits for them (what
        # the Kafka source does before committing offsets).
        await publisher.records_written()
        assert len(publisher._recorder) == 0, "records still being written"
        store = await CallStore.open(bus.js)
        records = [await store.get(call_id) for call_id in call_ids]
        assert all(r is not None and r.state.value == "queued" and r.source == "test"
                   for r in records)  # fmt: skip
        sub = await bus.js.pull_subscribe(subject, durable=f"order-{unique_name}")
        bodies = []
        while len(bodies) < len(events):
            for msg in await sub.fetch(50, timeout=5):
                bodies.append(msg.data)
                await msg.ack()
        assert bodies == [event.body for event in events], "not stored in the order sent"
        # Sent again (a record read twice): duplicates, and the existing records are kept.
        again = await publisher.confirm(await publisher.send(events[0]))
        assert again.duplicates == 1
    finally:
        await _remove(bus, unique_name)
        await bus.js.purge_stream(names.INVOKE_STREAM, subject=subject)


async def test_a_body_larger_than_a_message_travels_through_the_object_store(
    bus: Bus, catalog: FunctionCatalog, publisher: Publisher, unique_name: str
) -> None:
    topic = f"big-{unique_name}"
    body = bytes(range(256)) * (bus.max_payload // 256 + 10)
    try:
        await _deploy(bus, unique_name, topic)
        await _until(lambda: bool(publisher._topics.functions_for(topic)))
        [inv] = (await publisher.hand_off(SourceEvent(topic, body))).invocations
        msg = await bus.js.get_last_msg(names.INVOKE_STREAM, inv.subject)
        assert msg.data in (b"", None)
        ref = (msg.headers or {})["Faas-Payload"]
        stored = await (await bus.js.object_store(names.PAYLOADS_BUCKET)).get(ref)
        assert stored.data == body
    finally:
        await _remove(bus, unique_name)
        await bus.js.purge_stream(
            names.INVOKE_STREAM, subject=names.invoke_subject(NS, unique_name)
        )
