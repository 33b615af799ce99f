"""``/healthz``, ``/metrics``, ``/`` and ``/ui/``, and the gateway as its own process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from faasbus.bus import Endpoint, free_port
from tests.gateway.helpers import Gateway, ProviderApp, ReplicaControl

MakeGateway = Callable[..., Awaitable[Gateway]]
StartReplica = Callable[..., Awaitable[tuple[ReplicaControl, Endpoint]]]


async def test_healthz_follows_the_provider(
    gateway: Gateway, provider: ProviderApp, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway.url}/healthz") as resp:
        assert resp.status == 200
    provider.healthy = False
    async with http.get(f"{gateway.url}/healthz") as resp:
        assert resp.status == 503
        assert "provider" in await resp.text()


async def test_healthz_is_503_when_the_provider_is_unreachable(
    make_gateway: MakeGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await make_gateway(functions_provider_url=f"http://127.0.0.1:{free_port()}")
    async with http.get(f"{gateway.url}/healthz") as resp:
        assert resp.status == 503


async def test_healthz_reuses_the_providers_answer_for_a_while(
    make_gateway: MakeGateway, provider: ProviderApp, http: aiohttp.ClientSession
) -> None:
    gateway = await make_gateway(health_cache_s=60.0)
    async with http.get(f"{gateway.url}/healthz") as resp:
        assert resp.status == 200
    provider.healthy = False
    async with http.get(f"{gateway.url}/healthz") as resp:
        assert resp.status == 200  # cached


async def test_root_redirects_to_the_ui(gateway: Gateway, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gateway.url}/", allow_redirects=False) as resp:
        assert resp.status == 301
        assert resp.headers["Location"] == "/ui/"
    async with http.get(f"{gateway.url}/") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert "faasbus" in await resp.text()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_per_function_and_code(
    make_gateway: MakeGateway,
    start_replica: StartReplica,
    http: aiohttp.ClientSession,
    unique_name: str,
) -> None:
    gateway = await make_gateway(upstream_timeout_s=0.5)
    await start_replica(unique_name)
    await start_replica(unique_name)
    await gateway.wait_ready(unique_name, replicas=2)
    for _ in range(3):
        async with http.post(f"{gateway.url}/function/{unique_name}", data=b"x") as resp:
            assert resp.status == 200
    async with http.get(f"{gateway.url}/function/{unique_name}.openfaas-fn/slow") as resp:
        assert resp.status == 504

    async with http.get(f"{gateway.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        text = await resp.text()
    samples = _samples(text)
    label = f"{unique_name}.openfaas-fn"

    def value(name: str, **labels: str) -> float:
        return samples[name, frozenset({"function_name": label, **labels}.items())]

    assert value("gateway_function_invocation_total", code="200") == 3
    assert value("gateway_function_invocation_total", code="504") == 1
    assert value("gateway_functions_seconds_count", code="200") == 3
    assert value("gateway_functions_seconds_count", code="504") == 1
    assert value("gateway_functions_seconds_bucket", code="504", le="+Inf") == 1
    assert value("gateway_functions_seconds_bucket", code="504", le="0.25") == 0
    assert value("gateway_functions_seconds_sum", code="504") >= 0.5
    assert value("gateway_function_invocation_started") == 4
    assert value("gateway_service_count") == 2
    # OpenFaaS dashboards query these exact names.
    assert re.search(rf'^gateway_function_invocation_started{{function_name="{label}"}} 4\.0$',
                     text, re.MULTILINE)  # fmt: skip


async def test_metrics_do_not_grow_labels_for_unknown_names(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    for name in ("Bad_Name", "x..y"):
        async with http.get(f"{gateway.url}/function/{name}") as resp:
            assert resp.status == 404
    async with http.get(f"{gateway.url}/metrics") as resp:
        text = await resp.text()
    assert "Bad_Name" not in text
    assert "x..y" not in text


# ---------------------------------------------------------------- the process


async def _run_gateway(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "faasbus.gateway",
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_the_process_announces_serves_and_stops_on_sigterm(
    provider: ProviderApp, nats_url: str, http: aiohttp.ClientSession
) -> None:
    process = await _run_gateway(
        {"port": "0", "FAASBUS_NATS_URL": nats_url, "functions_provider_url": provider.url}
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stderr_task = asyncio.create_task(process.stderr.read(), name="gateway-stderr")
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        match = re.fullmatch(rb"faasbus-gateway listening on 127\.0\.0\.1:(\d+)\n", line)
        assert match is not None, line
        port = int(match.group(1))
        async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0
        assert await process.stdout.read() == b""  # stdout carries the one line only
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        stderr = await stderr_task
    assert b"gateway_started" in stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [("upstream_timeout", "soon"), ("max_body_size", "lots"), ("port", "70000")],
)
async def test_a_bad_setting_stops_the_process_naming_the_variable(
    variable: str, value: str
) -> None:
    process = await _run_gateway({variable: value})
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    assert variable.encode() in stderr
