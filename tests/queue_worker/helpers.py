"""Helpers for queue worker tests: real worker processes, real replica and callback servers.

Replicas are real aiohttp servers registered in ``faas_endpoints`` exactly as the provider would
register a watchdog; the worker finds them through its endpoint table. Invocations are published
onto FAAS_INVOKE with the shared envelope, as the gateway and connectors do.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from faasbus.bus import Bus, CallRecord, CallStore, Endpoint, Invocation, names, put_endpoint

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

FAST_RETRIES = {
    "initial_retry_wait": "100ms",
    "max_retry_wait": "500ms",
    "max_retry_attempts": "4",
    "ack_wait": "2s",
    "FAASBUS_REPLICA_WAIT": "2s",
    "FAASBUS_SHUTDOWN_GRACE": "5s",
    "FAASBUS_CALLBACK_ALLOW_LINK_LOCAL": "false",
}


@dataclass
class Callbacks:
    """Everything POSTed to the callback receiver."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def by_call(self) -> dict[str, list[tuple[dict[str, str], bytes]]]:
        out: dict[str, list[tuple[dict[str, str], bytes]]] = {}
        for headers, body in self.received:
            out.setdefault(headers["X-Call-Id"], []).append((headers, body))
        return out

    async def wait_for(self, count: int, timeout: float = 30.0) -> None:
        async def enough() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)


class Worker:
    """A ``python -m faasbus.queue_worker`` process."""

    def __init__(self, nats_url: str, **env: str) -> None:
        environ = {**os.environ, "FAASBUS_NATS_URL": nats_url, **FAST_RETRIES, **env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "faasbus.queue_worker"],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert b"ready" in line, f"worker did not start: {line!r}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def terminate(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


async def serve(handler: Handler, port: int = 0) -> tuple[web.AppRunner, str]:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{bound}"


async def register_replica(bus: Bus, function: str, url: str, instance: str = "r1") -> None:
    kv = await bus.js.key_value(names.ENDPOINTS_BUCKET)
    await put_endpoint(
        kv, Endpoint(names.DEFAULT_NAMESPACE, function, f"{function}-{instance}", url, ready=True)
    )


async def enqueue(
    bus: Bus, function: str, body: bytes = b"", *, callback_url: str = "", call_id: str = ""
) -> str:
    call = Invocation(
        call_id=call_id or uuid.uuid4().hex,
        namespace=names.DEFAULT_NAMESPACE,
        function=function,
        body=body,
        callback_url=callback_url,
        content_type="text/plain",
    )
    await bus.js.publish(call.subject, call.body, headers=call.nats_headers())
    return call.call_id


async def wait_record(
    bus: Bus, call_id: str, ready: Callable[[CallRecord], bool], timeout: float = 10.0
) -> CallRecord:
    """The call record once ``ready`` says so (records are written just after callbacks)."""
    store = await CallStore.open(bus.js)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        record = await store.get(call_id)
        if record is not None and ready(record):
            return record
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"call record {call_id} not ready: {record}")
        await asyncio.sleep(0.05)
