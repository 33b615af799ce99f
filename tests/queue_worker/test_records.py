"""Call records while a call runs: ``running`` within a bound, and cancel of a running call.

A quick call goes from ``queued`` straight to its final record; one that runs longer than
``FAASBUS_RUNNING_RECORD_AFTER`` (100 ms by default) shows ``running`` that long plus one KV round
trip after it started. Cancel reaches a running call by ``faas.control.cancel`` and, should that
message be missed, by the cancel flag its ``running`` write finds in the record.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, replace

from aiohttp import web

from faasbus.bus import Bus, CallbackState, CallRecord, CallState, CallStore, names
from tests.queue_worker.helpers import enqueue, register_replica, wait_record

# The documented bound is 100 ms plus one KV round trip; the slack is for a machine shared with
# other test runs (the bound itself is what the default setting gives on an idle one).
RUNNING_WITHIN_S = 3.0


async def _blocking_replica(servers, bus: Bus, name: str) -> tuple[asyncio.Event, asyncio.Event]:
    """A replica that holds each request until ``release``; ``arrived`` is set on the first."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hold(_: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.Response(text="late")

    await register_replica(bus, name, await servers(hold))
    return arrived, release


async def _request_cancel(bus: Bus, call_id: str, *, announce: bool) -> None:
    """What ``DELETE /async-function/{id}`` does: flag the record, then tell running workers."""
    store = await CallStore.open(bus.js)
    record = await store.get(call_id)
    assert record is not None
    await store.update(call_id, lambda r: replace(r, cancel_requested=True), create=record)
    if announce:
        await bus.nc.publish(names.CANCEL_SUBJECT, call_id.encode())


async def test_a_slow_call_shows_running_then_a_cancel_stops_it(
    bus: Bus, start_worker, servers, callbacks, unique_name
) -> None:
    received, callback_url = callbacks
    arrived, release = await _blocking_replica(servers, bus, unique_name)
    start_worker()
    call_id = await enqueue(bus, unique_name, callback_url=callback_url)
    try:
        await asyncio.wait_for(arrived.wait(), 20)
        started = time.monotonic()
        record = await wait_record(bus, call_id, lambda r: r.state is CallState.RUNNING)
        assert time.monotonic() - started < RUNNING_WITHIN_S
        assert record.attempts == 1
        assert record.started_at > 0
        await _request_cancel(bus, call_id, announce=True)
        await received.wait_for(1)
    finally:
        release.set()
    headers, body = received.received[0]
    assert (headers["X-Call-State"], headers["X-Function-Status"]) == ("cancelled", "499")
    assert body == b""
    record = await wait_record(bus, call_id, lambda r: r.callback_state.value == "delivered")
    assert record.state is CallState.CANCELLED
    assert record.status_code == 499
    await asyncio.sleep(0.5)  # a second callback (the call finishing after all) would be here
    assert len(received.received) == 1


async def test_a_cancel_flag_alone_stops_a_running_call(
    bus: Bus, start_worker, servers, callbacks, unique_name
) -> None:
    """The cancel message was missed (sent before the call was registered, or lost): the flag the
    running write finds in the record still stops the call."""
    received, callback_url = callbacks
    arrived, release = await _blocking_replica(servers, bus, unique_name)
    start_worker(FAASBUS_RUNNING_RECORD_AFTER="2s")
    call_id = await enqueue(bus, unique_name, callback_url=callback_url)
    try:
        await asyncio.wait_for(arrived.wait(), 20)
        await _request_cancel(bus, call_id, announce=False)
        await received.wait_for(1, timeout=20)
    finally:
        release.set()
    assert received.received[0][0]["X-Call-State"] == "cancelled"
    record = await wait_record(bus, call_id, lambda r: r.state.final)
    assert record.state is CallState.CANCELLED


def test_the_record_format_is_the_dataclass_fields_in_order() -> None:
    """Records are read by the gateway and other workers (older ones too): the JSON written is
    exactly ``asdict`` of the record, and reads back equal."""
    record = CallRecord(
        call_id="c1", function="f", namespace="openfaas-fn", state=CallState.RUNNING,
        callback_url="http://127.0.0.1:1/cb", callback_state=CallbackState.PENDING,
        result_headers={"Content-Type": "text/plain"}, attempts=2, result_b64="eA==",
    )  # fmt: skip
    assert record.to_json() == json.dumps(asdict(record), separators=(",", ":")).encode()
    assert CallRecord.from_json(record.to_json()) == record
