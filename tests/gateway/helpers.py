"""Real things the gateway tests talk to: replicas, a provider app, watchdogs, a scale-up responder.

- ``replica_app``: an aiohttp app standing in for a function replica. It echoes what it received
  (method, path with query, headers, body) as JSON, and has routes that stream (SSE released by
  the test), stall, or set hop-by-hop headers.
- ``ProviderApp``: an aiohttp app answering the faas-provider routes the gateway forwards
  (``/system/*`` and ``/healthz``), recording what reached it. Used while the real provider is
  not ready; see test_system.py.
- ``Watchdogs``: real ``python -m faasbus.watchdog`` processes (python mode, python3-http
  template) started with asyncio, stdout/stderr pumped for their whole life, stopped by pid.
- ``ScaleUpResponder``: a subscriber on the scale-up subject in the providers' queue group, as a
  provider would be: it counts requests and runs a test-supplied action before answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from faasbus.bus import SCALE_UP_QUEUE, SCALE_UP_SUBJECT, Bus, ScaleUpReply, names
from faasbus.gateway import GatewaySettings
from faasbus.gateway.app import TABLE

ECHO_HANDLER = """\
import json, os

def handle(event, context):
    return {
        "statusCode": 200,
        "body": {"pid": os.getpid(), "path": event.path, "body": event.body.decode()},
        "headers": {"Content-Type": "application/json"},
    }
"""

WATCHDOG_ANNOUNCE = re.compile(r"faasbus-watchdog listening on 127\.0\.0\.1:(\d+)")


async def wait_until(
    check: Callable[[], bool], *, timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``check`` until true; fail after ``timeout_s`` (a bound, not a sleep)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- the gateway


@dataclass
class Gateway:
    """A running gateway: its URL, its app (for the endpoint table), and its settings."""

    server: TestServer
    settings: GatewaySettings

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def wait_ready(self, function: str, replicas: int = 1,
                         namespace: str = names.DEFAULT_NAMESPACE) -> None:  # fmt: skip
        table = self.server.app[TABLE]
        await wait_until(
            lambda: len(table.ready(namespace, function)) >= replicas,
            what=f"{replicas} ready replica(s) of {function} in the gateway's table",
        )


# ---------------------------------------------------------------- replicas


@dataclass
class ReplicaControl:
    """Knobs and observations of one in-process replica app."""

    name: str
    sse_release: asyncio.Event = field(default_factory=asyncio.Event)
    sse_finished: asyncio.Event = field(default_factory=asyncio.Event)
    requests: int = 0


def replica_app(control: ReplicaControl) -> web.Application:
    async def sse(_request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(_request)
        await response.write(b"data: first\n\n")
        await asyncio.wait_for(control.sse_release.wait(), timeout=20)
        await response.write(b"data: second\n\n")
        await response.write_eof()
        control.sse_finished.set()
        return response

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(text="late")

    async def pause(_request: web.Request) -> web.Response:
        control.requests += 1
        await asyncio.sleep(0.2)  # long enough for concurrent requests to overlap
        return web.Response(text=control.name)

    async def hop(_request: web.Request) -> web.Response:
        return web.Response(
            text="hop",
            headers={
                "Keep-Alive": "timeout=5",
                "Proxy-Authenticate": "Basic",
                "Trailer": "X-Checksum",
                "Upgrade": "h2c",
                "X-End-To-End": "kept",
            },
        )

    async def big(_request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(_request)
        for _ in range(64):
            await response.write(b"x" * 4096)
        await response.write_eof()
        return response

    async def echo(request: web.Request) -> web.Response:
        control.requests += 1
        body = await request.read()
        return web.json_response(
            {
                "replica": control.name,
                "method": request.method,
                "path_qs": request.raw_path,
                "headers": dict(request.headers.items()),
                "header_list": list(request.headers.keys()),
                "body": body.decode(errors="replace"),
                "body_length": len(body),
            },
            headers={"X-Replica": control.name},
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/sse", sse)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hop", hop)
    app.router.add_get("/pause", pause)
    app.router.add_get("/big", big)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


# ---------------------------------------------------------------- provider


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


class ProviderApp:
    """A faas-provider stand-in: functions in memory, every request recorded."""

    def __init__(self) -> None:
        self.functions: dict[tuple[str, str], dict[str, object]] = {}
        self.seen: list[Seen] = []
        self.healthy = True
        self.info: object = {
            "provider": "faasbus-test",
            "orchestration": "process",
            "version": {"sha": "abc", "release": "9.9.9"},
        }
        self.url = ""
        self.log_client_left = asyncio.Event()
        self.log_lines_sent = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/system/functions", self.list_functions)
        app.router.add_post("/system/functions", self.deploy)
        app.router.add_put("/system/functions", self.update)
        app.router.add_delete("/system/functions", self.delete)
        app.router.add_get("/system/function/{name}", self.get_function)
        app.router.add_get("/system/info", self.get_info)
        app.router.add_get("/system/logs", self.logs)
        app.router.add_get("/system/moved", self.moved)
        app.router.add_route("*", "/system/{tail:.*}", self.other)
        return app

    async def _record(self, request: web.Request) -> bytes:
        body = await request.read()
        self.seen.append(Seen(request.method, request.raw_path, dict(request.headers), body))
        return body

    def add(self, name: str, namespace: str = "openfaas-fn") -> None:
        self.functions[namespace, name] = {
            "name": name,
            "namespace": namespace,
            "image": f"{name}:latest",
            "replicas": 1,
            "availableReplicas": 1,
            "invocationCount": 0,
        }

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="OK", status=200 if self.healthy else 503)

    async def list_functions(self, request: web.Request) -> web.Response:
        await self._record(request)
        namespace = request.query.get("namespace", "openfaas-fn")
        items = [f for (ns, _), f in self.functions.items() if ns == namespace]
        return web.json_response(items)

    async def get_function(self, request: web.Request) -> web.Response:
        await self._record(request)
        namespace = request.query.get("namespace", "openfaas-fn")
        found = self.functions.get((namespace, request.match_info["name"]))
        if found is None:
            raise web.HTTPNotFound(text="no such function")
        return web.json_response(found)

    async def deploy(self, request: web.Request) -> web.Response:
        raw = json.loads(await self._record(request))  # whatever the Content-Type
        self.add(raw["service"], raw.get("namespace") or "openfaas-fn")
        return web.Response(status=202)

    async def update(self, request: web.Request) -> web.Response:
        raw = json.loads(await self._record(request))
        if (raw.get("namespace") or "openfaas-fn", raw["service"]) not in self.functions:
            raise web.HTTPNotFound(text="no such function")
        return web.Response(status=202)

    async def delete(self, request: web.Request) -> web.Response:
        raw = json.loads(await self._record(request))
        key = (raw.get("namespace") or "openfaas-fn", raw["functionName"])
        if self.functions.pop(key, None) is None:
            raise web.HTTPNotFound(text="no such function")
        return web.Response(status=202)

    async def get_info(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.info is None:
            raise web.HTTPNotFound
        return web.json_response(self.info)

    async def moved(self, request: web.Request) -> web.Response:
        await self._record(request)
        raise web.HTTPFound("/system/functions")

    async def other(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"path": request.raw_path}, status=202)

    async def logs(self, request: web.Request) -> web.StreamResponse:
        """One NDJSON line at a time; with follow=true, until the client goes away."""
        await self._record(request)
        follow = request.query.get("follow") == "true"
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            for index in range(1000 if follow else 3):
                line = {
                    "name": request.query.get("name", ""),
                    "namespace": "openfaas-fn",
                    "instance": "i-0",
                    "timestamp": "2026-01-01T00:00:00Z",
                    "text": f"line {index}",
                }
                await response.write(json.dumps(line).encode() + b"\n")
                self.log_lines_sent += 1
                await asyncio.sleep(0.05)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.log_client_left.set()
            raise
        return response


# ---------------------------------------------------------------- watchdogs


@dataclass
class WatchdogProcess:
    process: asyncio.subprocess.Process
    port: int
    pumps: list[asyncio.Task[None]]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _pump(stream: asyncio.StreamReader | None, sink: list[str]) -> None:
    if stream is None:
        return
    while line := await stream.readline():
        sink.append(line.decode(errors="replace").rstrip())


class Watchdogs:
    """Starts real watchdogs (python mode, python3-http) and stops every one it started."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp_path = tmp_path
        self._started: list[WatchdogProcess] = []
        self.output: list[str] = []

    async def start(self, handler_source: str = ECHO_HANDLER) -> WatchdogProcess:
        index = len(self._started)
        folder = self._tmp_path / f"fn-{index}"
        folder.mkdir()
        (folder / "handler.py").write_text(handler_source)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "mode": "python",
            "FAASBUS_TEMPLATE": "python3-http",
            "FAASBUS_HANDLER": str(folder / "handler.py"),
            "port": "0",
            "FAASBUS_LOCK_FILE": str(folder / "lock"),
            "healthcheck_interval": "0",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "faasbus.watchdog",
            env=env,
            cwd=folder,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdout is not None
        pumps = [asyncio.create_task(_pump(process.stderr, self.output), name="wd-stderr")]
        watchdog = WatchdogProcess(process, 0, pumps)
        self._started.append(watchdog)
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        match = WATCHDOG_ANNOUNCE.fullmatch(line.strip())
        assert match is not None, f"watchdog did not start: {line!r} {self.output[-5:]}"
        watchdog.port = int(match.group(1))
        pumps.append(asyncio.create_task(_pump(process.stdout, self.output), name="wd-stdout"))
        return watchdog

    async def kill(self, watchdog: WatchdogProcess) -> None:
        if watchdog.process.returncode is None:
            watchdog.process.kill()
        await watchdog.process.wait()

    async def stop_all(self) -> None:
        for watchdog in self._started:
            if watchdog.process.returncode is None:
                watchdog.process.terminate()
                try:
                    await asyncio.wait_for(watchdog.process.wait(), timeout=10)
                except TimeoutError:
                    watchdog.process.kill()
                    await watchdog.process.wait()
            for pump in watchdog.pumps:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump


# ---------------------------------------------------------------- scale-up


class ScaleUpResponder:
    """Answers scale-up requests like a provider; ``actions`` says what to do per function."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._subscription: Subscription | None = None
        self.actions: dict[str, Callable[[], Awaitable[ScaleUpReply]]] = {}
        self.requests: list[dict[str, str]] = []

    async def start(self) -> None:
        self._subscription = await self._bus.nc.subscribe(
            SCALE_UP_SUBJECT, queue=SCALE_UP_QUEUE, cb=self._on_request
        )

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

    async def _on_request(self, msg: Msg) -> None:
        request = json.loads(msg.data)
        self.requests.append(request)
        action = self.actions.get(request["function"])
        if action is None:
            reply = ScaleUpReply(ok=False, error="no such function", found=False)
        else:
            reply = await action()
        await msg.respond(reply.to_json())

    def count(self, function: str) -> int:
        return sum(1 for r in self.requests if r["function"] == function)
