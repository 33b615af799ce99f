"""Faults: a worker killed mid-stream, a nats-server restart. Nothing accepted is lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from faasbus.bus import BusSettings, NatsServer, NatsServerOptions, connect, declare_bus
from tests.queue_worker.helpers import enqueue, register_replica

pytestmark = pytest.mark.slow


async def test_killing_a_worker_mid_stream_loses_nothing(
    bus, start_worker, servers, callbacks, unique_name
) -> None:
    received, callback_url = callbacks

    async def work(request: web.Request) -> web.Response:
        await asyncio.sleep(0.01)
        return web.Response(body=await request.read())

    await register_replica(bus, unique_name, await servers(work))
    victim = start_worker(ack_wait="3s", max_inflight="20")
    start_worker(ack_wait="3s", max_inflight="20")
    ids = await asyncio.gather(
        *(enqueue(bus, unique_name, str(i).encode(), callback_url=callback_url)
          for i in range(1000))
    )  # fmt: skip
    await received.wait_for(100, timeout=60)
    victim.kill()
    await received.wait_for(1000, timeout=120)
    await asyncio.sleep(4)  # a duplicate after redelivery would arrive within ack_wait + a bit
    per_call = Counter(headers["X-Call-Id"] for headers, _ in received.received)
    assert set(per_call) == set(ids)  # every call ran and called back
    # A callback can only be repeated when the worker died after the receiver accepted it and
    # before the worker's ack left (at least once; receivers dedupe on X-Call-Id). Only calls the
    # killed worker held (max_inflight 20) can be in that window, and finished calls never are.
    repeated = [call for call, count in per_call.items() if count > 1]
    assert len(repeated) <= 20
    assert max(per_call.values()) <= 2


async def test_a_nats_server_restart_keeps_queued_calls(
    tmp_path: Path, start_worker, servers, callbacks, unique_name
) -> None:
    received, callback_url = callbacks
    server = NatsServer(NatsServerOptions(store_dir=tmp_path / "store")).start()
    settings = BusSettings(nats_url=server.url, connect_wait_s=10)
    try:
        async with await connect(settings, name="t") as own_bus:
            await declare_bus(own_bus.js, settings)

            async def ok(request: web.Request) -> web.Response:
                return web.Response(body=await request.read())

            ids = [
                await enqueue(own_bus, unique_name, b"x", callback_url=callback_url)
                for _ in range(500)
            ]
        server.stop()
        server.start()
        async with await connect(settings, name="t") as own_bus:
            await register_replica(own_bus, unique_name, await servers(ok))
            start_worker(server.url)
            await received.wait_for(500, timeout=90)
        assert Counter(h["X-Call-Id"] for h, _ in received.received) == Counter(ids)
    finally:
        server.stop()
