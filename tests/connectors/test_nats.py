"""The NATS subject connector: the shared contract, plus its subscription and reply modes."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
import nats
import nats.errors
import pytest
from aiohttp import web

from faasbus.bus import Bus, BusSettings, CallStore, SettingsError, free_port
from faasbus.connectors.nats import NatsSettings
from tests.connectors.conftest import StartConnector
from tests.connectors.contract import ConnectorContract
from tests.connectors.helpers import Functions
from tests.queue_worker.helpers import Worker

pytestmark = pytest.mark.slow


@dataclass
class NatsDriver:
    """Publishes to core NATS subjects on the session server (the source, also the bus's URL).

    ``request`` mode sends each event as a request with a ``Nats-Msg-Id`` and retries until the
    connector answers: the at-least-once way to use the NATS connector, for which a killed
    connector loses nothing.
    """

    url: str
    request: bool = False
    connector: str = "nats"
    not_redelivering_reason: str = (
        "core NATS keeps no message for a subscriber that died and never redelivers "
        "(request mode with retries covers it: TestNatsRequestContract)"
    )

    @property
    def redelivers(self) -> bool:
        return self.request

    def topic(self, unique: str) -> str:
        return f"orders.{unique}"

    def env(self) -> dict[str, str]:
        return {"FAASBUS_NATS_SOURCE_URL": self.url}

    def expected_headers(self, topic: str) -> dict[str, str]:
        return {"X-NATS-Subject": topic}

    async def emit(self, topic: str, bodies: Sequence[bytes]) -> None:
        nc = await nats.connect(self.url, name="test-emitter")
        try:
            if not self.request:
                for body in bodies:
                    await nc.publish(topic, body)
                await nc.flush()
                return
            slots = asyncio.Semaphore(10)

            async def send(body: bytes) -> None:
                msg_id = hashlib.sha256(body).hexdigest()
                async with slots:
                    while True:
                        try:
                            await nc.request(
                                topic, body, timeout=2, headers={"Nats-Msg-Id": msg_id}
                            )
                        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                            await asyncio.sleep(0.1)
                        else:
                            return

            await asyncio.gather(*(send(body) for body in bodies))
        finally:
            await nc.close()


class TestNatsContract(ConnectorContract):
    # Core NATS keeps no message for a subscriber that died and never redelivers, so "killed
    # mid-stream loses nothing" cannot hold for plain publishes; TestNatsRequestContract (requests
    # retried until answered) runs it.
    test_a_connector_killed_mid_stream_loses_no_event = None  # type: ignore[assignment]

    @pytest.fixture
    def driver(self, nats_url: str) -> NatsDriver:
        return NatsDriver(nats_url)


class TestNatsRequestContract(ConnectorContract):
    """Requests with retries and ``Nats-Msg-Id``: the kill -9 case applies."""

    @pytest.fixture
    def driver(self, nats_url: str) -> NatsDriver:
        return NatsDriver(nats_url, request=True)


@pytest.fixture
async def source(nats_url: str) -> AsyncIterator[nats.NATS]:
    nc = await nats.connect(nats_url, name="test-source")
    yield nc
    await nc.close()


async def test_a_subject_prefix_maps_the_rest_of_the_subject_to_the_topic(
    functions: Functions, worker: Worker, start_connector: StartConnector, source: nats.NATS,
    unique_name: str,
) -> None:  # fmt: skip
    await functions.deploy(unique_name, topic="invoices.paid")
    await start_connector("nats", FAASBUS_NATS_SUBJECT_PREFIX=f"ev-{unique_name}")
    await source.publish(f"ev-{unique_name}.invoices.paid", b"paid")
    await source.flush()
    unrouted = await source.request(f"ev-{unique_name}.invoices.void", b"nobody", timeout=10)
    assert unrouted.headers is not None
    assert unrouted.headers["X-Function-Status"] == "404"
    assert "invoices.void" in unrouted.headers["X-Faasbus-Error"]
    [call] = await functions.wait_calls(unique_name, 1)
    assert call.body == b"paid"
    assert call.headers["X-Topic"] == "invoices.paid"
    assert call.headers["X-NATS-Subject"] == f"ev-{unique_name}.invoices.paid"


async def test_listed_subjects_may_use_wildcards_and_headers_pass_on(
    functions: Functions, worker: Worker, start_connector: StartConnector, source: nats.NATS,
    unique_name: str,
) -> None:  # fmt: skip
    await functions.deploy(unique_name, topic=f"{unique_name}.created")
    await start_connector("nats", topics=f"{unique_name}.*")
    await source.publish(
        f"{unique_name}.created", b'{"id": 1}',
        headers={"Content-Type": "application/json", "X-Tenant": "acme", "Nats-Msg-Id": "m1"},
    )  # fmt: skip
    await source.flush()
    [call] = await functions.wait_calls(unique_name, 1)
    assert call.body == b'{"id": 1}'
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["X-Tenant"] == "acme"
    assert "Nats-Msg-Id" not in call.headers


async def test_a_request_is_answered_with_the_function_response(
    functions: Functions, worker: Worker, start_connector: StartConnector, source: nats.NATS,
    unique_name: str,
) -> None:  # fmt: skip
    async def greet(request: web.Request) -> web.Response:
        name = (await request.read()).decode()
        return web.Response(text=f"hello {name}", headers={"X-Greeting": "yes"})

    await functions.deploy(unique_name, topic=f"greet.{unique_name}", behaviour=greet)
    connector = await start_connector(
        "nats", FAASBUS_NATS_REPLY="response", print_response="true", print_response_body="true"
    )
    reply = await source.request(f"greet.{unique_name}", b"ada", timeout=20)
    assert reply.data == b"hello ada"
    assert reply.headers is not None
    assert reply.headers["X-Function-Status"] == "200"
    assert reply.headers["X-Function-Name"] == unique_name
    assert reply.headers["X-Greeting"] == "yes"
    assert reply.headers["X-Call-State"] == "succeeded"
    # print_response: the outcome is logged too.
    [logged] = await connector.wait_event("function_response")
    assert (logged["function"], logged["status"], logged["body"]) == (unique_name, 200, "hello ada")


async def test_a_request_is_acked_once_handed_off_with_call_ids_on_record(
    bus: Bus, functions: Functions, start_connector: StartConnector, source: nats.NATS,
    unique_name: str,
) -> None:  # fmt: skip
    # The answer means "on the bus" (the record may be queued, or later if a worker runs).
    first, second = f"{unique_name}-a", f"{unique_name}-b"
    await functions.deploy(first, topic=f"ack.{unique_name}")
    await functions.deploy(second, topic=f"ack.{unique_name}")
    await start_connector("nats")
    reply = await source.request(f"ack.{unique_name}", b"x", timeout=10)
    answer = json.loads(reply.data)
    assert answer["topic"] == f"ack.{unique_name}"
    assert sorted(c["function"] for c in answer["calls"]) == [first, second]
    store = await CallStore.open(bus.js)
    for call in answer["calls"]:
        record = await store.get(call["call_id"])
        assert record is not None
        assert (record.source, record.topic) == ("nats", f"ack.{unique_name}")
    # Following the topic map, a subject no function names is not even subscribed to.
    with pytest.raises(nats.errors.NoRespondersError):
        await source.request(f"ack.{unique_name}-nobody", b"x", timeout=10)


async def test_metrics_count_events_and_invocations_and_sigterm_stops_cleanly(
    functions: Functions, worker: Worker, start_connector: StartConnector, source: nats.NATS,
    unique_name: str,
) -> None:  # fmt: skip
    port = free_port()
    topic = f"metered.{unique_name}"
    await functions.deploy(unique_name, topic=topic)
    connector = await start_connector(
        "nats", topics=f"{topic},metered.{unique_name}-none", FAASBUS_METRICS_PORT=str(port)
    )
    for body in (b"1", b"2"):
        await source.publish(topic, body)
    await source.publish(f"metered.{unique_name}-none", b"3")
    await source.flush()
    await functions.wait_calls(unique_name, 2)
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    assert f'faasbus_connector_events_total{{connector="nats",topic="{topic}"}} 2.0' in text
    assert 'faasbus_connector_events_total{connector="nats",topic="(unrouted)"} 1.0' in text
    function_label = f"{unique_name}.openfaas-fn"
    assert (
        f'faasbus_connector_invocations_total{{connector="nats",function="{function_label}"}} 2.0'
        in text
    )
    assert await connector.terminate() == 0
    assert connector.events("connector_stopped")


def test_settings_refuse_ambiguous_or_self_feeding_subscriptions() -> None:
    bus = {"FAASBUS_NATS_URL": "nats://127.0.0.1:4222"}
    with pytest.raises(SettingsError, match="FAASBUS_NATS_SUBJECT_PREFIX"):
        NatsSettings.from_env({**bus, "topics": "a", "FAASBUS_NATS_SUBJECT_PREFIX": "ev"})
    with pytest.raises(SettingsError, match="topics"):
        NatsSettings.from_env({**bus, "topics": "faas.invoke.>"})
    with pytest.raises(SettingsError, match="topics"):
        NatsSettings.from_env({**bus, "topics": "a..b"})
    with pytest.raises(SettingsError, match="FAASBUS_NATS_REPLY"):
        NatsSettings.from_env({**bus, "FAASBUS_NATS_REPLY": "maybe"})
    other = NatsSettings.from_env(
        {**bus, "topics": "faas.events.>", "FAASBUS_NATS_SOURCE_URL": "nats://10.0.0.1:4222"}
    )
    assert other.common.topics == ("faas.events.>",)
    assert not other.source_is_bus
    prefixed = NatsSettings.from_env({**bus, "FAASBUS_NATS_SUBJECT_PREFIX": "ev."})
    assert prefixed.subject_prefix == "ev."
    assert prefixed.common.bus == BusSettings(nats_url="nats://127.0.0.1:4222")
