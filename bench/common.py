"""What the connector benchmarks share: service processes, a subscribed function, an echo replica.

``bench/connectors.py``, ``bench/kafka.py`` and ``bench/sqs.py`` import it as a sibling module
(the script's folder is on ``sys.path`` when run as ``python bench/NAME.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Self

from aiohttp import web

from faasbus.bus import Bus, BusSettings, Endpoint, cancel_and_wait, names, put_endpoint

NS = names.DEFAULT_NAMESPACE


def start_service(module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python -m module`` with ``env`` on top of ours, once it printed its ready line."""
    process = subprocess.Popen(
        [sys.executable, "-m", module], env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if b"ready" not in line:
        raise RuntimeError(f"{module} did not start: {line!r}")
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, up to 15 s, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def deploy(bus: Bus, function: str, topic: str) -> None:
    """Store ``function`` subscribed to ``topic``, as the provider would."""
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    record = {"service": function, "namespace": NS, "annotations": {"topic": topic}}
    await kv.put(names.function_key(NS, function), json.dumps(record).encode())


async def stored(bus: Bus, function: str) -> int:
    """How many invocations of ``function`` FAAS_INVOKE holds."""
    subject = names.invoke_subject(NS, function)
    info = await bus.js.stream_info(names.INVOKE_STREAM, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


class EchoReplica:
    """An aiohttp echo server in this process, registered as ``function``'s one ready replica and
    refreshed like a provider refreshes it (an endpoint not refreshed expires); ``all_seen`` is
    set once ``target`` requests arrived (``target`` may change while it runs)."""

    def __init__(self, bus: Bus, function: str, target: int) -> None:
        self.bus = bus
        self.function = function
        self.target = target
        self.seen = 0
        self.all_seen = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def _echo(self, request: web.Request) -> web.Response:
        self.seen += 1
        if self.seen >= self.target:
            self.all_seen.set()
        return web.Response(body=await request.read())

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._echo)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        kv = await self.bus.js.key_value(names.ENDPOINTS_BUCKET)
        endpoint = Endpoint(NS, self.function, "r1", f"http://127.0.0.1:{port}", ready=True)
        await put_endpoint(kv, endpoint)

        async def refresh() -> None:
            while True:
                await asyncio.sleep(BusSettings().endpoint_ttl_s / 3)
                await put_endpoint(kv, endpoint)

        self._refresher = asyncio.create_task(refresh(), name="endpoint-refresher")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._refresher is not None:
            await cancel_and_wait([self._refresher])
        if self._runner is not None:
            await self._runner.cleanup()
