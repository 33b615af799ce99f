"""Helpers for connector tests: connector processes, deployed test functions, a recording replica.

Functions are what the provider would store: a JSON record in KV ``faas_functions`` (OpenFaaS
field names) and a ready replica in ``faas_endpoints`` — here one real aiohttp server that
records every call by function (path ``/fn/<name>/``). A real queue worker process (from the queue
worker's test helpers) runs the invocations the connectors publish. Outage tests get a bus of their
own (:func:`own_bus`): a nats-server they may stop and start while the rest stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from multidict import CIMultiDict

from faasbus.bus import (
    Bus,
    BusSettings,
    Endpoint,
    NatsServer,
    NatsServerOptions,
    cancel_and_wait,
    connect,
    declare_bus,
    delete_endpoint,
    names,
    put_endpoint,
)
from tests.queue_worker.helpers import Worker

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse | None]]

# Every connector in tests retries the bus quickly so outage tests stay short.
CONNECTOR_ENV = {
    "FAASBUS_PUBLISH_RETRY_MAX": "500ms",
    "FAASBUS_PUBLISH_TIMEOUT": "1s",
    "FAASBUS_SHUTDOWN_GRACE": "3s",
    "FAASBUS_LOG_LEVEL": "info",
    "FAASBUS_NATS_CONNECT_WAIT": "10s",
}


class ConnectorProcess:
    """A ``python -m faasbus.connectors.<name>`` process; its log (stderr, JSON) in a file."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path

    @classmethod
    async def start(cls, name: str, nats_url: str, log_path: Path, **env: str) -> ConnectorProcess:
        environ = {**os.environ, "FAASBUS_NATS_URL": nats_url, **CONNECTOR_ENV, **env}
        with log_path.open("ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"faasbus.connectors.{name}",
                env=environ, stdout=asyncio.subprocess.PIPE, stderr=log_file,
                start_new_session=True,
            )  # fmt: skip
        connector = cls(name, process, log_path)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        except TimeoutError:
            connector.kill_now()
            message = f"{name} connector not ready in 30 s:\n{connector.log_text()}"
            raise AssertionError(message) from None
        if line != f"faasbus-{name}-connector ready\n".encode():
            await connector.kill()
            raise AssertionError(f"{name} connector said {line!r}:\n{connector.log_text()}")
        return connector

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, event: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("event") == event:
                    out.append(entry)
        return out

    async def wait_event(self, event: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The log entries named ``event``, once there is at least one (the log is a file)."""
        deadline = time.monotonic() + timeout
        while not (found := self.events(event)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} in the {self.name} connector's log")
            await asyncio.sleep(0.05)
        return found

    def kill_now(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)

    async def kill(self) -> None:
        """SIGKILL (kill -9) and reap."""
        self.kill_now()
        await self.process.wait()

    async def terminate(self, timeout: float = 20.0) -> int:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"{self.name} connector ignored SIGTERM") from None


@dataclass
class Call:
    """One request a test function received."""

    function: str
    headers: CIMultiDict[str]
    body: bytes
    started: float
    finished: float = 0.0


@dataclass
class Functions:
    """Test functions on one bus: KV records plus one recording replica server."""

    bus: Bus
    namespace: str = names.DEFAULT_NAMESPACE
    calls: list[Call] = field(default_factory=list)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    _url: str = ""
    _runner: web.AppRunner | None = None
    _replicas: dict[str, Endpoint] = field(default_factory=dict)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _refresher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/fn/{name}/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._url = f"http://127.0.0.1:{port}"
        self._refresher = asyncio.create_task(self._refresh(), name="test-endpoint-refresher")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._refresher is not None:
            await cancel_and_wait([self._refresher])
        # Functions outlive a test in the session's KV: remove them, or every later connector
        # (a cron connector above all) would keep serving them.
        with contextlib.suppress(Exception):
            functions = await self.bus.js.key_value(names.FUNCTIONS_BUCKET)
            endpoints = await self.bus.js.key_value(names.ENDPOINTS_BUCKET)
            for name, endpoint in self._replicas.items():
                with contextlib.suppress(Exception):
                    await functions.delete(names.function_key(self.namespace, name))
                await delete_endpoint(endpoints, endpoint)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        call = Call(name, CIMultiDict(request.headers), await request.read(), time.monotonic())
        self.calls.append(call)
        self._arrived.set()
        response: web.StreamResponse | None = None
        behaviour = self.behaviours.get(name)
        if behaviour is not None:
            response = await behaviour(request)
        call.finished = time.monotonic()
        return response if response is not None else web.Response(text=f"{name} ok")

    async def _refresh(self) -> None:
        # Endpoint records count only while refreshed (the provider does it every few seconds).
        while True:
            await asyncio.sleep(3)
            for endpoint in list(self._replicas.values()):
                with contextlib.suppress(Exception):
                    kv = await self.bus.js.key_value(names.ENDPOINTS_BUCKET)
                    await put_endpoint(kv, endpoint)

    async def deploy(
        self,
        name: str,
        *,
        topic: str | None = None,
        annotations: dict[str, str] | None = None,
        behaviour: Behaviour | None = None,
    ) -> None:
        """Store the function record (as the provider does) and register its replica."""
        found = dict(annotations or {})
        if topic is not None:
            found["topic"] = topic
        record = {
            "service": name, "namespace": self.namespace, "image": "test",
            "annotations": found, "labels": {}, "envVars": {}, "replicas": 1,
        }  # fmt: skip
        if behaviour is not None:
            self.behaviours[name] = behaviour
        if name not in self._replicas:
            endpoint = Endpoint(
                self.namespace, name, f"{name}-r1", f"{self._url}/fn/{name}", ready=True
            )
            kv = await self.bus.js.key_value(names.ENDPOINTS_BUCKET)
            await put_endpoint(kv, endpoint)
            self._replicas[name] = endpoint
        functions = await self.bus.js.key_value(names.FUNCTIONS_BUCKET)
        await functions.put(names.function_key(self.namespace, name), json.dumps(record).encode())

    async def remove(self, name: str) -> None:
        """Delete the function record (its replica stays: a mis-routed call would still land)."""
        functions = await self.bus.js.key_value(names.FUNCTIONS_BUCKET)
        await functions.delete(names.function_key(self.namespace, name))

    def of(self, name: str) -> list[Call]:
        return [call for call in self.calls if call.function == name]

    async def wait_for(
        self, ready: Callable[[], bool], timeout: float = 30.0, what: str = "calls"
    ) -> None:
        async def until() -> None:
            while not ready():
                self._arrived.clear()
                await self._arrived.wait()

        try:
            await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            counts: dict[str, int] = {}
            for call in self.calls:
                counts[call.function] = counts.get(call.function, 0) + 1
            raise AssertionError(f"timed out waiting for {what}; calls so far: {counts}") from None

    async def wait_calls(self, name: str, count: int, timeout: float = 30.0) -> list[Call]:
        await self.wait_for(
            lambda: len(self.of(name)) >= count, timeout, f"{count} calls of {name}"
        )
        return self.of(name)


def stop_worker(worker: Worker) -> None:
    """Kill a queue worker process (kill -9) and close its stdout pipe."""
    worker.kill()
    if worker.process.stdout is not None:
        worker.process.stdout.close()


@dataclass
class OwnBus:
    """A test's own nats-server with the bus declared on it and test functions on it."""

    server: NatsServer
    functions: Functions
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, **env: str) -> Worker:
        """A real queue worker on this bus; killed when the bus goes."""
        worker = Worker(self.server.url, **env)
        self.workers.append(worker)
        return worker


@contextlib.asynccontextmanager
async def own_bus(store_dir: Path, client_name: str) -> AsyncIterator[OwnBus]:
    """A bus the test may stop (``own.server.stop()``) and start again while the connector, its
    source and the queue worker stay up; the session bus must not go away under other tests.

    On the way out: the functions are removed and the connection closed, then the workers are
    killed and the server stopped. ``own.functions`` keeps its calls for checks after the block.
    """
    server = NatsServer(NatsServerOptions(store_dir=store_dir)).start()
    settings = BusSettings(nats_url=server.url, connect_wait_s=10)
    workers: list[Worker] = []
    try:
        async with await connect(settings, name=client_name) as bus:
            await declare_bus(bus.js, settings)
            async with Functions(bus) as functions:
                yield OwnBus(server, functions, workers)
    finally:
        for worker in workers:
            stop_worker(worker)
        server.stop()
