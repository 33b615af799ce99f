"""The contract every connector keeps, run against each connector's real source.

A connector's test module subclasses :class:`ConnectorContract` and provides a ``driver``
fixture: a :class:`SourceDriver` that knows how to put events into that source (publish to a NATS
subject, produce to Kafka, send to SQS) and what the connector needs to read them. The same tests
then check, through a real connector process, a real queue worker and real replicas:

1. an event becomes one invocation per subscribing function; the function gets the event's
   body and ``X-Topic``, ``X-Connector``, ``Content-Type`` and the source's own headers;
2. routing is by exact topic, trimmed names, one topic to many functions;
3. a function added or removed changes routing without a restart (within seconds; the watch
   makes it milliseconds);
4. a connector killed with -9 mid-stream loses no event and runs none twice — for sources that
   redeliver (``driver.redelivers``); for the others the test is skipped with the reason;
5. a bus outage of a few seconds delays events but loses none, and runs none twice.

Kafka and SQS reuse this file as it is (FastStream's ``tests/brokers/base`` pattern).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pytest

from tests.connectors.conftest import StartConnector
from tests.connectors.helpers import Call, Functions, own_bus

__all__ = ["ConnectorContract", "SourceDriver"]


class SourceDriver(Protocol):
    """How the contract drives one kind of source."""

    connector: str  # ``python -m faasbus.connectors.<connector>``
    redelivers: bool  # does the source give an unacknowledged event again after a crash?
    not_redelivering_reason: str  # why the kill -9 test does not apply, when it does not

    def topic(self, unique: str) -> str:
        """A topic no other test uses, valid for this source."""
        ...

    def env(self) -> dict[str, str]:
        """Settings that point the connector at the source (not at the bus)."""
        ...

    async def emit(self, topic: str, bodies: Sequence[bytes]) -> None:
        """Put events into the source; return when the source has accepted all of them."""
        ...

    def expected_headers(self, topic: str) -> dict[str, str]:
        """Source-specific headers each invocation carries (beyond X-Topic, X-Connector)."""
        ...


def _bodies(calls: Sequence[Call]) -> Counter[bytes]:
    return Counter(call.body for call in calls)


def _distinct_calls_per_body(calls: Sequence[Call]) -> dict[bytes, int]:
    """How many different call ids ran each body (a worker's own redelivery keeps the id)."""
    ids: dict[bytes, set[str]] = {}
    for call in calls:
        ids.setdefault(call.body, set()).add(call.headers["X-Call-Id"])
    return {body: len(found) for body, found in ids.items()}


class ConnectorContract:
    """Base class of each connector's contract test class (needs a ``driver`` fixture)."""

    @pytest.fixture
    def topic(self, driver: SourceDriver, unique_name: str) -> str:
        """This test's own topic, made before the test asks ``driver.env()``."""
        return driver.topic(unique_name)

    @pytest.mark.usefixtures("worker")
    async def test_an_event_reaches_the_function_with_its_body_and_headers(
        self, driver: SourceDriver, topic: str, functions: Functions,
        start_connector: StartConnector, unique_name: str,
    ) -> None:  # fmt: skip
        await functions.deploy(unique_name, topic=topic)
        await start_connector(driver.connector, **driver.env())
        bodies = [b"first", "zweite \u00e9v\u00e9nement".encode(), bytes(range(256))]
        await driver.emit(topic, bodies)
        calls = await functions.wait_calls(unique_name, len(bodies))
        assert _bodies(calls) == Counter(bodies)
        for call in calls:
            assert call.headers["X-Topic"] == topic
            assert call.headers["X-Connector"] == f"{driver.connector}-connector"
            assert call.headers["Content-Type"] == "text/plain"
            assert call.headers["X-Call-Id"]
            for name, value in driver.expected_headers(topic).items():
                assert call.headers.get(name) == value, name
        assert len({call.headers["X-Call-Id"] for call in calls}) == len(bodies)

    @pytest.mark.usefixtures("worker")
    async def test_one_topic_reaches_every_function_naming_it_exactly(
        self, driver: SourceDriver, topic: str, functions: Functions,
        start_connector: StartConnector, unique_name: str,
    ) -> None:  # fmt: skip
        first, second, near = f"{unique_name}-a", f"{unique_name}-b", f"{unique_name}-c"
        await functions.deploy(first, topic=topic)
        await functions.deploy(second, topic=f" other-{unique_name} ,  {topic} ")
        await functions.deploy(near, topic=f"{topic}x,{topic.upper()}")
        await start_connector(driver.connector, **driver.env())
        await driver.emit(topic, [b"to both"])
        assert [c.body for c in await functions.wait_calls(first, 1)] == [b"to both"]
        assert [c.body for c in await functions.wait_calls(second, 1)] == [b"to both"]
        # The third function's topics only look alike; the other two already ran, and a call
        # for the third would have been published with theirs.
        await asyncio.sleep(0.5)
        assert functions.of(near) == []

    @pytest.mark.usefixtures("worker")
    async def test_routing_follows_deploys_and_deletes_without_a_restart(
        self, driver: SourceDriver, topic: str, functions: Functions,
        start_connector: StartConnector, unique_name: str,
    ) -> None:  # fmt: skip
        stays, comes_and_goes = f"{unique_name}-a", f"{unique_name}-b"
        await functions.deploy(stays, topic=topic)
        await start_connector(driver.connector, **driver.env())

        # Added at runtime: events reach it within seconds (the KV watch makes it milliseconds).
        await functions.deploy(comes_and_goes, topic=topic)
        added_at = time.monotonic()
        sent = 0
        while not functions.of(comes_and_goes):
            assert time.monotonic() - added_at < 10, "a new function never got events"
            await driver.emit(topic, [f"probe-{sent}".encode()])
            sent += 1
            await functions.wait_for(
                lambda n=sent: len(functions.of(stays)) >= n, what=f"{sent} calls of {stays}"
            )
            await asyncio.sleep(0.1)

        # Removed at runtime: after a second, events no longer reach it.
        await functions.remove(comes_and_goes)
        await asyncio.sleep(1.0)
        before = len(functions.of(comes_and_goes))
        await driver.emit(topic, [b"after-1", b"after-2", b"after-3"])
        await functions.wait_for(
            lambda: {b"after-1", b"after-2", b"after-3"} <= set(_bodies(functions.of(stays))),
            what="the events after the delete",
        )
        await asyncio.sleep(0.5)  # a mis-routed call would have been published with the others
        assert len(functions.of(comes_and_goes)) == before

    @pytest.mark.usefixtures("worker")
    async def test_a_connector_killed_mid_stream_loses_no_event(
        self, driver: SourceDriver, topic: str, functions: Functions,
        start_connector: StartConnector, unique_name: str,
    ) -> None:  # fmt: skip
        # A source that never redelivers (plain core NATS) removes this test in its subclass
        # (setting it to None) and says why; running it there would be a mistake.
        assert driver.redelivers, driver.not_redelivering_reason
        await functions.deploy(unique_name, topic=topic)
        bodies = [f"event-{i}".encode() for i in range(300)]

        async def stream() -> None:  # a steady stream rather than one burst: ~1 s long
            for start in range(0, len(bodies), 10):
                await driver.emit(topic, bodies[start : start + 10])
                await asyncio.sleep(0.03)

        first = await start_connector(driver.connector, **driver.env())
        emitting = asyncio.create_task(stream(), name="emit")
        try:
            await functions.wait_calls(unique_name, 1, timeout=60)
            assert not emitting.done(), "the stream ended before the kill: make it longer"
            await first.kill()
            await start_connector(driver.connector, **driver.env())
            await asyncio.wait_for(emitting, timeout=90)
        finally:
            if not emitting.done():
                emitting.cancel()
        calls = await functions.wait_calls(unique_name, len(bodies), timeout=60)
        await asyncio.sleep(1.0)  # a duplicate hand-off would be run by now
        calls = functions.of(unique_name)
        assert set(_bodies(calls)) == set(bodies), "events were lost"
        assert max(_distinct_calls_per_body(calls).values()) == 1, "an event ran twice"

    async def test_a_bus_outage_delays_events_but_loses_none(
        self, driver: SourceDriver, topic: str, start_connector: StartConnector,
        unique_name: str, tmp_path: Path,
    ) -> None:  # fmt: skip
        # The bus gets its own server here, so it can go away while the source stays up.
        async with own_bus(tmp_path / "bus-store", "contract-outage") as own:
            functions = own.functions
            await functions.deploy(unique_name, topic=topic)
            own.start_worker(max_inflight="50")
            await start_connector(driver.connector, url=own.server.url, **driver.env())
            before = [f"before-{i}".encode() for i in range(20)]
            during = [f"during-{i}".encode() for i in range(30)]
            await driver.emit(topic, before)
            await functions.wait_calls(unique_name, len(before))

            own.server.stop()
            emitting = asyncio.create_task(driver.emit(topic, during), name="emit")
            await asyncio.sleep(3.0)  # the outage: a few seconds
            own.server.start()
            await asyncio.wait_for(emitting, timeout=60)
            total = len(before) + len(during)
            await functions.wait_calls(unique_name, total, timeout=60)
            await asyncio.sleep(1.0)  # a duplicate hand-off would be run by now
            calls = functions.of(unique_name)
            assert set(_bodies(calls)) == set(before + during), "events were lost"
            assert max(_distinct_calls_per_body(calls).values()) == 1, "ran twice"
