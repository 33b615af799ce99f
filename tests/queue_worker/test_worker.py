"""The queue worker against a real nats-server, real replica servers and real worker processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

from aiohttp import web

from faasbus.bus import Bus, CallState, CallStore, DeadLetters, names
from tests.queue_worker.helpers import enqueue, register_replica, wait_record


async def test_a_call_runs_and_its_callback_carries_the_result(
    bus, start_worker, servers, callbacks, unique_name
) -> None:
    received, callback_url = callbacks

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=b"echo:" + body, headers={"X-Fn": "yes"})

    await register_replica(bus, unique_name, await servers(echo))
    start_worker()
    call_id = await enqueue(bus, unique_name, b"hi", callback_url=callback_url)
    await received.wait_for(1)
    headers, body = received.received[0]
    assert body == b"echo:hi"
    assert headers["X-Call-Id"] == call_id
    assert headers["X-Function-Status"] == "200"
    assert headers["X-Function-Name"] == unique_name
    assert headers["X-Retry"] == "0"
    assert headers["X-Fn"] == "yes"
    assert float(headers["X-Duration-Seconds"]) >= 0
    assert headers["User-Agent"].startswith("faasbus-queue-worker/")
    record = await wait_record(bus, call_id, lambda r: r.callback_state.value != "pending")
    assert record.state is CallState.SUCCEEDED
    assert record.callback_state.value == "delivered"
    # A quick call skips the running write; its final record still says what running would have.
    assert (record.attempts, record.max_attempts, record.status_code) == (1, 4, 200)
    assert 0 < record.queued_at <= record.started_at <= record.finished_at


async def test_503_503_200_gives_one_callback_with_two_retries(
    bus, start_worker, servers, callbacks, unique_name
) -> None:
    received, callback_url = callbacks
    answers = iter([503, 503, 200])

    async def flaky(_: web.Request) -> web.Response:
        return web.Response(status=next(answers), text="done")

    await register_replica(bus, unique_name, await servers(flaky))
    start_worker()
    call_id = await enqueue(bus, unique_name, callback_url=callback_url)
    await received.wait_for(1)
    await asyncio.sleep(0.5)  # a second callback would arrive within this
    assert len(received.received) == 1
    headers, body = received.received[0]
    assert (headers["X-Call-Id"], headers["X-Function-Status"], headers["X-Retry"]) == (
        call_id, "200", "2",
    )  # fmt: skip
    assert body == b"done"


async def test_always_500_is_dead_lettered_then_redriven(
    bus, start_worker, servers, callbacks, unique_name
) -> None:
    received, callback_url = callbacks
    healthy = False
    calls = 0

    async def broken(_: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=200 if healthy else 500, text="ok" if healthy else "boom")

    await register_replica(bus, unique_name, await servers(broken))
    start_worker(max_retry_attempts="3")
    call_id = await enqueue(bus, unique_name, b"payload", callback_url=callback_url)
    await received.wait_for(1)
    assert calls == 3
    assert received.received[0][0]["X-Function-Status"] == "500"
    record = await wait_record(bus, call_id, lambda r: r.state.final)
    assert record.state is CallState.DEAD
    dead = await bus.js.get_last_msg(
        names.DLQ_STREAM, names.dead_subject(names.DEFAULT_NAMESPACE, unique_name)
    )
    assert dead.data == b"payload"
    assert dead.headers is not None
    assert dead.headers["Faas-Last-Status"] == "500"
    assert dead.headers["Faas-Call-Id"] == call_id

    # Fixed: a redrive runs it again under the same call id and the callback says 200.
    healthy = True
    letters = DeadLetters(bus.js, await CallStore.open(bus.js))
    entries = [e async for e in letters.iterate(function=unique_name)]
    assert [e.to_wire()["callId"] for e in entries] == [call_id]
    assert entries[0].to_wire()["kind"] == "invocation"
    assert await letters.redrive(entries[0]) == call_id
    await received.wait_for(2)
    assert received.received[1][0]["X-Function-Status"] == "200"
    assert received.received[1][1] == b"ok"
    assert [e async for e in letters.iterate(function=unique_name)] == []
    record = await wait_record(bus, call_id, lambda r: r.state is CallState.SUCCEEDED)


async def test_retry_after_is_honoured(bus, start_worker, servers, unique_name) -> None:
    seen: list[float] = []

    async def busy(_: web.Request) -> web.Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return web.Response(status=429, headers={"Retry-After": "2"})
        return web.Response(text="ok")

    await register_replica(bus, unique_name, await servers(busy))
    start_worker()
    await enqueue(bus, unique_name)
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(seen) == 2
    assert seen[1] - seen[0] >= 1.9  # the backoff alone would have been 0.1 s


async def test_the_same_call_id_twice_runs_once(bus, start_worker, servers, unique_name) -> None:
    runs = 0
    done = asyncio.Event()

    async def count(_: web.Request) -> web.Response:
        nonlocal runs
        runs += 1
        done.set()
        return web.Response(text="ok")

    await register_replica(bus, unique_name, await servers(count))
    call_id = uuid.uuid4().hex
    await enqueue(bus, unique_name, call_id=call_id)
    await enqueue(bus, unique_name, call_id=call_id)
    start_worker()
    await asyncio.wait_for(done.wait(), 20)
    await asyncio.sleep(1.0)
    assert runs == 1


async def test_a_slow_function_does_not_hold_up_a_fast_one(
    bus, start_worker, servers, unique_name
) -> None:
    slow_name, fast_name = unique_name, f"{unique_name}-fast"
    release = asyncio.Event()
    fast_done = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="slow")

    async def fast(_: web.Request) -> web.Response:
        fast_done.set()
        return web.Response(text="fast")

    await register_replica(bus, slow_name, await servers(slow))
    await register_replica(bus, fast_name, await servers(fast))
    start_worker(max_inflight="4")
    for _ in range(20):
        await enqueue(bus, slow_name)
    await asyncio.sleep(1.5)  # the slow function now holds what it can
    started = time.monotonic()
    await enqueue(bus, fast_name)
    try:
        await asyncio.wait_for(fast_done.wait(), 10)
        assert time.monotonic() - started < 5
    finally:
        release.set()


async def test_a_call_longer_than_ack_wait_runs_once(
    bus, start_worker, servers, callbacks, unique_name
) -> None:
    received, callback_url = callbacks
    runs = 0

    async def long(_: web.Request) -> web.Response:
        nonlocal runs
        runs += 1
        await asyncio.sleep(4)
        return web.Response(text="long")

    await register_replica(bus, unique_name, await servers(long))
    start_worker(ack_wait="1s")
    await enqueue(bus, unique_name, callback_url=callback_url)
    await received.wait_for(1, timeout=30)
    await asyncio.sleep(1.5)
    assert runs == 1
    assert len(received.received) == 1


async def test_a_cancelled_queued_call_never_runs(
    bus: Bus, start_worker, servers, callbacks, unique_name
) -> None:
    received, callback_url = callbacks
    runs = 0

    async def fn(_: web.Request) -> web.Response:
        nonlocal runs
        runs += 1
        return web.Response(text="ran")

    await register_replica(bus, unique_name, await servers(fn))
    call_id = await enqueue(bus, unique_name, callback_url=callback_url)
    store = await CallStore.open(bus.js)
    from faasbus.bus import CallRecord  # noqa: PLC0415

    base = CallRecord(call_id=call_id, function=unique_name, namespace="openfaas-fn")
    await store.update(call_id, lambda r: CallRecord(**{**r.__dict__, "cancel_requested": True}),
                       create=base)  # fmt: skip
    start_worker()
    await received.wait_for(1)
    assert runs == 0
    headers, _ = received.received[0]
    assert headers["X-Call-State"] == "cancelled"
    assert headers["X-Function-Status"] == "499"


async def test_callbacks_survive_a_receiver_outage(bus, start_worker, servers, unique_name) -> None:
    from faasbus.bus import free_port  # noqa: PLC0415
    from tests.queue_worker.helpers import Callbacks, serve  # noqa: PLC0415

    port = free_port()

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="result")

    await register_replica(bus, unique_name, await servers(ok))
    start_worker(max_retry_wait="1s")
    ids = [await enqueue(bus, unique_name, callback_url=f"http://127.0.0.1:{port}/cb")
           for _ in range(5)]  # fmt: skip
    await asyncio.sleep(3)  # the receiver is down: callbacks fail and are retried
    collected = Callbacks()

    async def receive(request: web.Request) -> web.Response:
        collected.received.append((dict(request.headers), await request.read()))
        collected.arrived.set()
        return web.Response()

    runner, _ = await serve(receive, port)
    try:
        await collected.wait_for(5, timeout=30)
        await asyncio.sleep(0.5)
        assert Counter(h["X-Call-Id"] for h, _ in collected.received) == Counter(ids)
        assert all(body == b"result" for _, body in collected.received)
    finally:
        await runner.cleanup()
