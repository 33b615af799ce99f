"""The gateway in front of the real provider (``python -m faasbus.provider``), as faas-cli uses it.

A host-command function (``envProcess: cat``, classic watchdog) is deployed through the gateway,
invoked as ``NAME.NAMESPACE``, listed with its invocation count, its logs read, then removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from faasbus.gateway.app import TABLE
from tests.gateway.helpers import Gateway, wait_until

MakeGateway = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def real_provider(nats_url: str, tmp_path: Path) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "faasbus.provider",
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "port": "0",
            "FAASBUS_NATS_URL": nats_url,
            "FAASBUS_STATE_DIR": str(tmp_path / "state"),
            "FAASBUS_REPLICA_STOP_GRACE": "5s",
        },
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        match = re.fullmatch(rb"faasbus-provider listening on 127\.0\.0\.1:(\d+)\n", line)
        assert match is not None, line
        yield f"http://127.0.0.1:{int(match.group(1))}"
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()
        with contextlib.suppress(Exception):
            await process.stdout.read()


async def test_deploy_invoke_list_logs_remove_through_the_gateway(
    make_gateway: MakeGateway, real_provider: str, http: aiohttp.ClientSession, unique_name: str
) -> None:
    gateway = await make_gateway(functions_provider_url=real_provider)
    system = f"{gateway.url}/system"

    async with http.get(f"{gateway.url}/healthz") as resp:
        assert resp.status == 200
    async with http.get(f"{system}/info") as resp:
        info = await resp.json()
        assert isinstance(info["provider"]["version"], dict)
        assert isinstance(info["version"], dict)

    deploy = json.dumps({"service": unique_name, "image": unique_name, "envProcess": "cat"})
    async with http.put(f"{system}/functions", data=deploy.encode(),
                        skip_auto_headers=("Content-Type",)) as resp:  # fmt: skip
        assert resp.status == 404  # faas-cli then falls back to POST
    async with http.post(f"{system}/functions", data=deploy.encode(),
                         skip_auto_headers=("Content-Type",)) as resp:  # fmt: skip
        assert resp.status == 202

    async def available() -> int:
        async with http.get(f"{system}/function/{unique_name}?usage=1") as resp:
            return int((await resp.json()).get("availableReplicas", 0)) if resp.ok else 0

    for _ in range(300):
        if await available() >= 1:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the function never became available")

    url = f"{gateway.url}/function/{unique_name}.openfaas-fn"
    async with http.post(url, data=b"hello from the gateway") as resp:
        assert resp.status == 200
        assert await resp.read() == b"hello from the gateway"

    async with http.get(f"{system}/functions") as resp:
        listed = {item["name"]: item for item in await resp.json()}
    assert listed[unique_name]["invocationCount"] == 1

    lines: list[dict[str, str]] = []

    async def read_logs() -> bool:
        async with http.get(f"{system}/logs?name={unique_name}&tail=-1&follow=false") as resp:
            assert resp.status == 200
            lines[:] = [json.loads(line) for line in (await resp.read()).splitlines() if line]
        return bool(lines)

    for _ in range(100):
        if await read_logs():
            break
        await asyncio.sleep(0.1)
    assert lines
    assert all(line["name"] == unique_name for line in lines)

    delete = json.dumps({"functionName": unique_name}).encode()
    async with http.delete(f"{system}/functions", data=delete) as resp:
        assert resp.status == 202
    table = gateway.server.app[TABLE]
    await wait_until(lambda: not table.ready("openfaas-fn", unique_name), what="replica gone")
    async with http.post(url, data=b"anyone?") as resp:
        assert resp.status == 404  # the provider says the function no longer exists
