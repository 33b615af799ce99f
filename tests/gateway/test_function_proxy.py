"""The sync fast path ``/function/NAME[/path]`` against real replicas (aiohttp servers)."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from nats.js.kv import KeyValue

from faasbus.bus import Endpoint, ScaleUpReply, free_port, put_endpoint
from tests.gateway.helpers import Gateway, ReplicaControl, ScaleUpResponder

StartReplica = Callable[..., Awaitable[tuple[ReplicaControl, Endpoint]]]
MakeGateway = Callable[..., Awaitable[Gateway]]

INTERNAL = "X-OpenFaaS-Internal"


@pytest.fixture(params=["pool", "aiohttp"])
def upstream_client(request: pytest.FixtureRequest) -> str:
    """Every test here runs with the lean pool and with aiohttp's client."""
    param: str = request.param
    return param


@pytest.fixture
async def echo(gateway: Gateway, start_replica: StartReplica, unique_name: str) -> str:
    """A function with one ready replica; returns its name."""
    await start_replica(unique_name)
    await gateway.wait_ready(unique_name)
    return unique_name


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_every_method_reaches_the_function(
    gateway: Gateway, echo: str, http: aiohttp.ClientSession, method: str
) -> None:
    async with http.request(method, f"{gateway.url}/function/{echo}", data=b"payload") as resp:
        assert resp.status == 200
        seen = await resp.json()
    assert seen["method"] == method
    assert seen["body"] == "payload"


async def test_head_keeps_the_functions_length_and_sends_no_body(
    gateway: Gateway, start_replica: StartReplica, http: aiohttp.ClientSession, unique_name: str
) -> None:
    await start_replica(unique_name)
    await gateway.wait_ready(unique_name)
    async with http.head(f"{gateway.url}/function/{unique_name}/hop") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len("hop"))
        assert await resp.read() == b""


@pytest.mark.parametrize(
    ("suffix", "seen_path"),
    [
        ("", "/"),
        ("/", "/"),
        ("?a=1&b=two", "/?a=1&b=two"),
        ("/orders/42", "/orders/42"),
        ("/orders/42/?x=%20y&z", "/orders/42/?x=%20y&z"),
        ("/a%2Fb/c%20d", "/a%2Fb/c%20d"),
    ],
)
async def test_path_and_query_pass_through_as_sent(
    gateway: Gateway, echo: str, http: aiohttp.ClientSession, suffix: str, seen_path: str
) -> None:
    url = f"{gateway.url}/function/{echo}{suffix}"
    async with http.get(aiohttp.client.URL(url, encoded=True)) as resp:
        assert resp.status == 200
        assert (await resp.json())["path_qs"] == seen_path


async def test_name_dot_namespace_splits_at_the_last_dot(
    gateway: Gateway,
    start_replica: StartReplica,
    http: aiohttp.ClientSession,
    unique_name: str,
    responder: ScaleUpResponder,
) -> None:
    await start_replica(unique_name)
    other, _ = await start_replica(unique_name, namespace="team-a")
    await gateway.wait_ready(unique_name)
    await gateway.wait_ready(unique_name, namespace="team-a")

    async with http.get(f"{gateway.url}/function/{unique_name}.openfaas-fn/p") as resp:
        assert resp.status == 200
        assert (await resp.json())["path_qs"] == "/p"
    async with http.get(f"{gateway.url}/function/{unique_name}.team-a") as resp:
        assert resp.status == 200
        assert (await resp.json())["replica"] == other.name
    # Unknown namespace: the provider says there is no such function.
    async with http.get(f"{gateway.url}/function/{unique_name}.team-b") as resp:
        assert resp.status == 404
        assert resp.headers[INTERNAL] == "gateway"
    assert responder.requests == [{"namespace": "team-b", "function": unique_name}]


async def test_invalid_names_are_404_without_asking_anyone(
    gateway: Gateway, http: aiohttp.ClientSession, responder: ScaleUpResponder
) -> None:
    for name in ("Upper", "a..b", "-x", "x.", "a_b"):
        async with http.get(f"{gateway.url}/function/{name}") as resp:
            assert resp.status == 404, name
            assert resp.headers[INTERNAL] == "gateway"
    assert responder.requests == []


async def test_call_id_start_time_served_by_and_forwarded_headers(
    gateway: Gateway, echo: str, http: aiohttp.ClientSession
) -> None:
    before = time.time_ns()
    async with http.post(f"{gateway.url}/function/{echo}", data=b"x") as resp:
        seen = (await resp.json())["headers"]
        call_id = resp.headers["X-Call-Id"]
        assert uuid.UUID(call_id).version == 4
        assert seen["X-Call-Id"] == call_id
        start = int(resp.headers["X-Start-Time"])
        assert before <= start <= time.time_ns()
        assert seen["X-Start-Time"] == resp.headers["X-Start-Time"]
        assert resp.headers["X-Served-By"].startswith("faasbus/")
        assert seen["X-Forwarded-For"] == "127.0.0.1"
        assert seen["X-Forwarded-Host"] == f"{gateway.server.host}:{gateway.server.port}"
        assert resp.headers["X-Replica"] == "r1"  # the function's own headers come back

    supplied = {"X-Call-Id": "my-call-1", "X-Forwarded-For": "10.1.2.3", "X-Forwarded-Host": "h"}
    async with http.post(f"{gateway.url}/function/{echo}", headers=supplied) as resp:
        seen = (await resp.json())["headers"]
        assert resp.headers["X-Call-Id"] == "my-call-1"
        assert seen["X-Call-Id"] == "my-call-1"
        assert seen["X-Forwarded-For"] == "10.1.2.3"
        assert seen["X-Forwarded-Host"] == "h"


async def test_client_headers_arrive_and_nothing_is_added(
    gateway: Gateway, echo: str, http: aiohttp.ClientSession
) -> None:
    sent = {"Authorization": "Bearer fn-token", "X-Custom": "1", "Content-Type": "text/csv"}
    async with http.post(f"{gateway.url}/function/{echo}", headers=sent, data=b"a,b") as resp:
        seen = (await resp.json())["headers"]
    for key, value in sent.items():
        assert seen[key] == value
    # The gateway's HTTP client must not invent headers the client did not send.
    for invented in ("Accept", "Accept-Encoding", "User-Agent"):
        assert invented not in seen


async def test_hop_by_hop_headers_are_dropped_both_ways(
    gateway: Gateway, echo: str, http: aiohttp.ClientSession
) -> None:
    headers = {
        "Connection": "keep-alive, X-Private",
        "X-Private": "secret",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic eDp5",
        "Upgrade": "websocket",
        "X-End-To-End": "kept",
    }
    async with http.get(f"{gateway.url}/function/{echo}", headers=headers) as resp:
        seen = {k.lower() for k in (await resp.json())["header_list"]}
    assert "x-end-to-end" in seen
    for dropped in ("x-private", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert dropped not in seen

    async with http.get(f"{gateway.url}/function/{echo}/hop") as resp:
        assert await resp.text() == "hop"
        assert resp.headers["X-End-To-End"] == "kept"
        for dropped in ("Keep-Alive", "Proxy-Authenticate", "Trailer", "Upgrade"):
            assert dropped not in resp.headers


async def test_sse_events_arrive_before_the_function_finishes(
    gateway: Gateway,
    start_replica: StartReplica,
    http: aiohttp.ClientSession,
    unique_name: str,
) -> None:
    control, _ = await start_replica(unique_name)
    await gateway.wait_ready(unique_name)
    async with http.get(f"{gateway.url}/function/{unique_name}/sse") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), timeout=10)
        assert first == b"data: first\n\n"
        assert not control.sse_finished.is_set()  # the upstream is still open
        control.sse_release.set()
        rest = await asyncio.wait_for(resp.read(), timeout=10)
    assert rest == b"data: second\n\n"


async def test_large_bodies_stream_both_ways_intact(
    gateway: Gateway, echo: str, http: aiohttp.ClientSession
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, over the whole-body threshold

    async def chunks() -> AsyncIterator[bytes]:
        for offset in range(0, len(payload), 100_000):
            yield payload[offset : offset + 100_000]

    # Chunked upload (no Content-Length) and a known-length upload.
    for data in (chunks(), payload):
        async with http.post(f"{gateway.url}/function/{echo}", data=data) as resp:
            assert resp.status == 200
            assert (await resp.json())["body_length"] == len(payload)

    async with http.get(f"{gateway.url}/function/{echo}/big") as resp:
        body = await resp.read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"x" * 4096 * 64).digest()


async def test_body_over_the_limit_is_413(
    make_gateway: MakeGateway,
    start_replica: StartReplica,
    http: aiohttp.ClientSession,
    unique_name: str,
) -> None:
    gateway = await make_gateway(max_body_size=100_000)
    control, _ = await start_replica(unique_name)
    await gateway.wait_ready(unique_name)
    url = f"{gateway.url}/function/{unique_name}"

    async with http.post(url, data=b"x" * 100_001, headers={"X-Call-Id": "big-1"}) as resp:
        assert resp.status == 413
        assert resp.headers[INTERNAL] == "gateway"
        assert resp.headers["X-Call-Id"] == "big-1"
    assert control.requests == 0  # refused on the header, before any replica was bothered

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(30):
            yield b"y" * 10_000

    async with http.post(url, data=chunks()) as resp:
        assert resp.status == 413
        assert resp.headers[INTERNAL] == "gateway"

    async with http.post(url, data=b"x" * 100_000) as resp:
        assert resp.status == 200  # exactly the limit is fine


async def test_unknown_function_is_404(
    gateway: Gateway, http: aiohttp.ClientSession, responder: ScaleUpResponder, unique_name: str
) -> None:
    async with http.post(f"{gateway.url}/function/{unique_name}", data=b"x") as resp:
        assert resp.status == 404
        assert resp.headers[INTERNAL] == "gateway"
        assert "X-Call-Id" in resp.headers
    assert responder.count(unique_name) == 1


async def test_unreachable_replica_is_502(
    gateway: Gateway, kv: KeyValue, http: aiohttp.ClientSession, unique_name: str
) -> None:
    dead = Endpoint("openfaas-fn", unique_name, "i-0", f"http://127.0.0.1:{free_port()}", True)
    await put_endpoint(kv, dead)
    await gateway.wait_ready(unique_name)
    async with http.get(f"{gateway.url}/function/{unique_name}") as resp:
        assert resp.status == 502
        assert resp.headers[INTERNAL] == "gateway"


async def test_no_replica_in_time_is_503(
    make_gateway: MakeGateway,
    http: aiohttp.ClientSession,
    responder: ScaleUpResponder,
    unique_name: str,
) -> None:
    gateway = await make_gateway(scale_from_zero_wait_s=0.5)

    async def accepted_but_never_ready() -> ScaleUpReply:
        return ScaleUpReply(ok=True, replicas=1)

    responder.actions[unique_name] = accepted_but_never_ready
    started = time.monotonic()
    async with http.get(f"{gateway.url}/function/{unique_name}") as resp:
        assert resp.status == 503
        assert resp.headers[INTERNAL] == "gateway"
    assert time.monotonic() - started < 5


async def test_scale_from_zero_off_fails_at_once_with_503(
    make_gateway: MakeGateway,
    http: aiohttp.ClientSession,
    responder: ScaleUpResponder,
    unique_name: str,
) -> None:
    gateway = await make_gateway(scale_from_zero=False)
    async with http.get(f"{gateway.url}/function/{unique_name}") as resp:
        assert resp.status == 503
        assert resp.headers[INTERNAL] == "gateway"
    assert responder.requests == []


async def test_upstream_timeout_is_504(
    make_gateway: MakeGateway,
    start_replica: StartReplica,
    http: aiohttp.ClientSession,
    unique_name: str,
) -> None:
    gateway = await make_gateway(upstream_timeout_s=0.5)
    await start_replica(unique_name)
    await gateway.wait_ready(unique_name)
    started = time.monotonic()
    async with http.get(f"{gateway.url}/function/{unique_name}/slow") as resp:
        assert resp.status == 504
        assert resp.headers[INTERNAL] == "gateway"
    assert time.monotonic() - started < 5
    # The function's own answers are not marked as the gateway's.
    async with http.get(f"{gateway.url}/function/{unique_name}/missing") as resp:
        assert resp.status == 200
        assert INTERNAL not in resp.headers


async def test_requests_spread_over_ready_replicas(
    gateway: Gateway,
    start_replica: StartReplica,
    http: aiohttp.ClientSession,
    unique_name: str,
) -> None:
    first, _ = await start_replica(unique_name)
    second, _ = await start_replica(unique_name)
    await gateway.wait_ready(unique_name, replicas=2)
    # Fewest in flight: with concurrent requests both replicas get work.
    url = f"{gateway.url}/function/{unique_name}/pause"

    async def call() -> None:
        async with http.get(url) as resp:
            assert resp.status == 200

    await asyncio.gather(*(call() for _ in range(40)))
    # Each replica holds requests for 0.2 s, so they overlap and the choice alternates.
    assert abs(first.requests - second.requests) <= 4
    assert first.requests + second.requests == 40
