"""The async path through the gateway: enqueue, refusals, call records, cancel, dead letters.

A real gateway (in process, real socket), the session's real nats-server, real queue worker
processes, and real aiohttp servers as replicas and callback receivers.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from faasbus.bus import (
    Bus,
    BusSettings,
    CallState,
    NatsServer,
    NatsServerOptions,
    connect,
    declare_bus,
    names,
)
from faasbus.gateway import GatewaySettings, create_app, runner_options
from tests.gateway.helpers import Gateway, ProviderApp
from tests.queue_worker.helpers import register_replica, wait_record

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Servers = Callable[[Handler], Awaitable[str]]
ServeAsync = Callable[..., Awaitable[None]]


async def deploy(bus: Bus, function: str, provider: ProviderApp | None = None) -> None:
    """A function in the store, as the provider writes it, and known to the provider."""
    if provider is not None:
        provider.add(function, names.DEFAULT_NAMESPACE)
    annotations: dict[str, str] = {}
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    record = {"service": function, "namespace": names.DEFAULT_NAMESPACE,
              "annotations": annotations, "replicas": 1}  # fmt: skip
    await kv.put(names.function_key(names.DEFAULT_NAMESPACE, function), json.dumps(record).encode())


@pytest.fixture
def serve_async(
    bus: Bus, provider: ProviderApp, servers: Servers, start_worker, unique_name: str
) -> ServeAsync:
    """``await serve_async(handler, **worker_env)``: ``unique_name`` deployed with one replica
    running ``handler``, and a queue worker (``worker_env`` its settings) to run its calls."""

    async def serve(handler: Handler, **worker_env: str) -> None:
        await deploy(bus, unique_name, provider)
        await register_replica(bus, unique_name, await servers(handler))
        start_worker(**worker_env)

    return serve


async def test_unknown_function_is_404_not_a_fake_202(gateway: Gateway, http) -> None:
    async with http.post(f"{gateway.url}/async-function/no-such-fn", data=b"x") as r:
        assert r.status == 404
        assert "not found" in await r.text()


async def test_enqueue_answers_202_with_a_call_id_and_a_queued_record(
    bus: Bus, gateway: Gateway, provider: ProviderApp, http, unique_name: str
) -> None:
    await deploy(bus, unique_name, provider)
    url = f"{gateway.url}/async-function/{unique_name}.openfaas-fn/orders?x=1"
    async with http.post(url, data=b"payload", headers={"Content-Type": "text/plain",
                                                         "X-Custom": "1"}) as r:  # fmt: skip
        assert r.status == 202
        assert await r.read() == b""
        call_id = r.headers["X-Call-Id"]
    uuid.UUID(call_id)
    msg = await bus.js.get_last_msg(
        names.INVOKE_STREAM, names.invoke_subject(names.DEFAULT_NAMESPACE, unique_name)
    )
    assert msg.data == b"payload"
    assert msg.headers is not None
    assert msg.headers["Faas-Call-Id"] == call_id
    assert msg.headers["Faas-Path"] == "/orders"
    assert msg.headers["Faas-Query"] == "x=1"
    assert msg.headers["Faas-H-X-Custom"] == "1"
    async with http.get(f"{gateway.url}/system/calls/{call_id}") as r:
        assert r.status == 200
        record = await r.json()
    assert record["state"] == "queued"
    assert record["function"] == unique_name


async def test_the_same_call_id_twice_is_enqueued_once(
    bus: Bus, gateway: Gateway, provider: ProviderApp, http, unique_name: str
) -> None:
    await deploy(bus, unique_name, provider)
    call_id = uuid.uuid4().hex
    for _ in range(2):
        async with http.post(f"{gateway.url}/async-function/{unique_name}", data=b"x",
                             headers={"X-Call-Id": call_id}) as r:  # fmt: skip
            assert r.status == 202
            assert r.headers["X-Call-Id"] == call_id
    info = await bus.js.stream_info(
        names.INVOKE_STREAM,
        subjects_filter=names.invoke_subject(names.DEFAULT_NAMESPACE, unique_name),
    )
    assert info.state.subjects == {names.invoke_subject(names.DEFAULT_NAMESPACE, unique_name): 1}


async def test_bad_input_is_refused_with_the_reason(
    bus: Bus, make_gateway, provider: ProviderApp, http, unique_name: str
) -> None:
    await deploy(bus, unique_name, provider)
    gateway = await make_gateway(max_async_body_size=1024)
    url = f"{gateway.url}/async-function/{unique_name}"
    cases: list[tuple[dict[str, str], bytes, int, str]] = [
        ({"X-Callback-Url": "ftp://x/y"}, b"", 400, "http or https"),
        ({"X-Callback-Url": "http://169.254.169.254/latest"}, b"", 400, "metadata"),
        ({"X-Call-Id": "has spaces"}, b"", 400, "X-Call-Id"),
        ({}, b"x" * 2048, 413, ""),
    ]
    for headers, body, status, text in cases:
        async with http.post(url, data=body, headers=headers) as r:
            assert r.status == status, headers
            assert text in await r.text()
    async with http.post(f"{gateway.url}/async-function/Bad_Name", data=b"") as r:
        assert r.status == 400


async def test_bus_down_is_503_never_a_fake_202(
    tmp_path: Path, aiohttp_server, http, unique_name: str
) -> None:
    server = NatsServer(NatsServerOptions(store_dir=tmp_path / "store")).start()
    settings = BusSettings(nats_url=server.url, connect_wait_s=5)
    own = await connect(settings, name="t")
    try:
        await declare_bus(own.js, settings)
        await deploy(own, unique_name)
        gw = GatewaySettings(port=0, bus=settings, functions_provider_url="http://127.0.0.1:9")
        test_server = await aiohttp_server(create_app(gw, bus=own), **runner_options(gw))
        url = str(test_server.make_url(f"/async-function/{unique_name}"))
        async with http.post(url, data=b"x") as r:
            assert r.status == 202
        server.stop()
        async with http.post(url, data=b"x") as r:
            assert r.status == 503
            assert r.headers["X-OpenFaaS-Internal"] == "gateway"
        server.start()  # back (same ports and store): the gateway recovers by itself
        for _ in range(100):
            async with http.post(url, data=b"x") as r:
                if r.status == 202:
                    break
            await asyncio.sleep(0.1)
        assert r.status == 202
        await test_server.close()
    finally:
        await own.close()
        server.stop()


async def test_end_to_end_record_result_cancel_and_large_bodies(
    bus: Bus, gateway: Gateway, http, serve_async: ServeAsync, callbacks, unique_name: str
) -> None:
    received, callback_url = callbacks

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), headers={"X-Echo": "1"})

    await serve_async(echo)
    big = bytes(range(256)) * 8192  # 2 MiB: over the 1 MiB NATS max payload
    call_ids = []
    for body in (b"hello", big):
        async with http.post(f"{gateway.url}/async-function/{unique_name}",
                             data=io.BytesIO(body),
                             headers={"X-Callback-Url": callback_url}) as r:  # fmt: skip
            assert r.status == 202
            call_ids.append(r.headers["X-Call-Id"])
    await received.wait_for(2)
    by_call = received.by_call()
    assert by_call[call_ids[0]][0][1] == b"hello"
    assert by_call[call_ids[1]][0][1] == big
    await wait_record(bus, call_ids[0], lambda r: r.callback_state.value == "delivered")
    async with http.get(f"{gateway.url}/system/calls/{call_ids[0]}") as r:
        record: dict[str, Any] = await r.json()
    assert record["state"] == CallState.SUCCEEDED.value
    assert record["status_code"] == 200
    async with http.get(f"{gateway.url}/system/calls/{call_ids[0]}/result") as r:
        result = await r.json()
    assert (result["status"], result["body"], result["headers"]["X-Echo"]) == (200, "hello", "1")
    async with http.delete(f"{gateway.url}/async-function/{call_ids[0]}") as r:
        assert r.status == 409  # already finished
    async with http.delete(f"{gateway.url}/async-function/{uuid.uuid4().hex}") as r:
        assert r.status == 404
    async with http.get(f"{gateway.url}/system/calls/{uuid.uuid4().hex}") as r:
        assert r.status == 404


async def test_dead_letters_listed_shown_redriven_and_purged(
    bus: Bus, gateway: Gateway, http, serve_async: ServeAsync, callbacks, unique_name: str
) -> None:
    received, callback_url = callbacks
    healthy = False

    async def fn(_: web.Request) -> web.Response:
        return web.Response(status=200 if healthy else 500, text="ok" if healthy else "boom")

    await serve_async(fn, max_retry_attempts="2")
    async with http.post(f"{gateway.url}/async-function/{unique_name}", data=b"job",
                         headers={"X-Callback-Url": callback_url}) as r:  # fmt: skip
        call_id = r.headers["X-Call-Id"]
    await received.wait_for(1)
    await wait_record(bus, call_id, lambda r: r.state is CallState.DEAD)
    async with http.get(f"{gateway.url}/system/dlq", params={"function": unique_name}) as r:
        entries = await r.json()
    assert [(e["callId"], e["lastStatus"], e["attempts"]) for e in entries] == [(call_id, 500, 2)]
    async with http.get(f"{gateway.url}/system/dlq/{entries[0]['seq']}") as r:
        entry = await r.json()
    assert entry["body"] == "job"
    healthy = True
    async with http.post(f"{gateway.url}/system/dlq/redrive",
                         json={"function": unique_name}) as r:  # fmt: skip
        assert r.status == 202
        assert (await r.json())["callIds"] == [call_id]
    await received.wait_for(2)
    assert received.received[1][0]["X-Function-Status"] == "200"
    async with http.get(f"{gateway.url}/system/dlq", params={"function": unique_name}) as r:
        assert await r.json() == []
    healthy = False
    async with http.post(f"{gateway.url}/async-function/{unique_name}", data=b"again") as r:
        second = r.headers["X-Call-Id"]
    await wait_record(bus, second, lambda r: r.state is CallState.DEAD)
    async with http.delete(f"{gateway.url}/system/dlq", params={"function": unique_name}) as r:
        assert r.status == 202
    async with http.get(f"{gateway.url}/system/dlq", params={"function": unique_name}) as r:
        assert await r.json() == []


async def test_calls_and_dlq_need_credentials_when_auth_is_on(
    make_gateway, http, tmp_path: Path
) -> None:
    (tmp_path / "basic-auth-user").write_text("admin")
    (tmp_path / "basic-auth-password").write_text("secret")
    gateway = await make_gateway(basic_auth=True, secret_mount_path=tmp_path)
    for path in ("/system/calls/abc", "/system/dlq"):
        async with http.get(gateway.url + path) as r:
            assert r.status == 401
    credentials = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}
    async with http.get(gateway.url + "/system/dlq", headers=credentials) as r:
        assert r.status == 200
