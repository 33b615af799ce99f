"""The worker checks a callback URL's addresses before it POSTs (the gateway checked the URL when
it accepted the call, but DNS can change in between, and connectors enqueue without a gateway).

An IP-literal host is checked in place; a name is resolved off the event loop.
"""

from __future__ import annotations

from aiohttp import web

from faasbus.bus import Bus, CallbackState, CallState
from tests.queue_worker.helpers import enqueue, register_replica, wait_record


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def test_a_metadata_address_is_refused_and_the_call_still_ends(
    bus: Bus, start_worker, servers, unique_name
) -> None:
    await register_replica(bus, unique_name, await servers(_ok))
    start_worker()
    call_id = await enqueue(bus, unique_name, callback_url="http://169.254.169.254/latest")
    record = await wait_record(bus, call_id, lambda r: r.callback_state is CallbackState.REFUSED)
    assert record.state is CallState.SUCCEEDED
    assert "metadata" in record.error


async def test_a_callback_host_given_by_name_is_resolved_and_called(
    bus: Bus, start_worker, servers, callbacks, unique_name
) -> None:
    received, callback_url = callbacks
    await register_replica(bus, unique_name, await servers(_ok))
    start_worker()
    by_name = callback_url.replace("127.0.0.1", "localhost")
    call_id = await enqueue(bus, unique_name, callback_url=by_name)
    await received.wait_for(1)
    assert received.received[0][0]["X-Call-Id"] == call_id
    record = await wait_record(bus, call_id, lambda r: r.callback_state is CallbackState.DELIVERED)
    assert record.state is CallState.SUCCEEDED
