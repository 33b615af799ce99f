"""Helpers for the provider tests: the provider subprocess, an API client, handler bundles.

:class:`ProviderProcess` runs the real ``python -m faasbus.provider`` against the session's
nats-server with a private state directory; its announce line gives the port, and its stdout and
stderr are collected (two pump threads, so no asyncio task outlives a test) for assertions on
what it logged. Timings are shortened (stop grace, restart backoff, health interval) to keep the
suite quick. :class:`Functions` deploys through the API and deletes what it deployed, because
every provider on the session's bus reconciles every function in ``faas_functions``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from faasbus.provider import build_bundle

_ANNOUNCE = re.compile(r"faasbus-provider listening on (\S+):(\d+)")

FAST_ENV = {
    "FAASBUS_REPLICA_STOP_GRACE": "5s",
    "FAASBUS_RESTART_BACKOFF": "0.2s",
    "FAASBUS_RESTART_BACKOFF_MAX": "2s",
    "FAASBUS_HEALTH_INTERVAL": "0.5s",
    "FAASBUS_ENDPOINT_REFRESH": "1s",
    "FAASBUS_RESYNC_INTERVAL": "5s",
    "FAASBUS_REPLICA_START_TIMEOUT": "30s",
}


class ProviderProcess:
    """One provider subprocess; ``start()``, ``stop()`` (SIGTERM) or ``kill()`` (SIGKILL)."""

    def __init__(self, nats_url: str, state_dir: Path, extra_env: dict[str, str] | None = None):
        self.nats_url = nats_url
        self.state_dir = state_dir
        self.extra_env = dict(extra_env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._announced = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 30.0) -> ProviderProcess:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "port": "0",
            "FAASBUS_STATE_DIR": str(self.state_dir),
            "FAASBUS_NATS_URL": self.nats_url,
            "FAASBUS_NATS_CONNECT_WAIT": "10s",
            **FAST_ENV,
            **self.extra_env,
        }
        self._announced.clear()
        self.url = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "faasbus.provider"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self._threads = [
            threading.Thread(target=self._pump_stdout, args=(self.process,), daemon=True),
            threading.Thread(target=self._pump_stderr, args=(self.process,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        if not self._announced.wait(timeout_s):
            self.kill()
            tail = "\n".join(self.stderr_lines[-20:])
            raise RuntimeError(f"provider did not announce its port in {timeout_s}s:\n{tail}")
        return self

    def _pump_stdout(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.stdout_lines.append(line)
            match = _ANNOUNCE.search(line)
            if match is not None:
                self.url = f"http://{match.group(1)}:{match.group(2)}"
                self._announced.set()

    def _pump_stderr(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            self.stderr_lines.append(raw.decode(errors="replace").rstrip())

    @property
    def log_text(self) -> str:
        return "\n".join(self.stdout_lines + self.stderr_lines)

    def _join(self, process: subprocess.Popen[bytes]) -> None:
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    def stop(self, timeout_s: float = 40.0) -> int | None:
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._join(process)
        return process.returncode

    def kill(self) -> None:
        """SIGKILL the provider alone (its replicas are in their own sessions)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
        self._join(process)


class Functions:
    """Deploys through the API and deletes everything it deployed at the end of the test."""

    def __init__(self, http: aiohttp.ClientSession, provider: ProviderProcess) -> None:
        self.http = http
        self.provider = provider
        self.deployed: list[tuple[str, str]] = []

    async def deploy(self, body: dict[str, Any], *, expect: int = 202) -> str:
        async with self.http.post(f"{self.provider.url}/system/functions", json=body) as response:
            text = await response.text()
            assert response.status == expect, text
        if expect == 202:
            self.deployed.append((body["service"], body.get("namespace") or "openfaas-fn"))
        return text

    async def status(self, name: str, namespace: str = "openfaas-fn") -> dict[str, Any]:
        url = f"{self.provider.url}/system/function/{name}?namespace={namespace}"
        async with self.http.get(url) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            return body

    async def wait_available(
        self, name: str, count: int, *, namespace: str = "openfaas-fn", timeout_s: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = await self.status(name, namespace)
            if status["availableReplicas"] == count:
                return status
            await _tick()
        raise AssertionError(f"{name}: availableReplicas never reached {count}: {status}")

    async def scale(self, name: str, replicas: int, namespace: str = "openfaas-fn") -> int:
        url = f"{self.provider.url}/system/scale-function/{name}"
        body = {"serviceName": name, "replicas": replicas, "namespace": namespace}
        async with self.http.post(url, json=body) as response:
            await response.read()
            return response.status

    async def invoke(self, name: str, body: bytes = b"", path: str = "") -> tuple[int, bytes]:
        async with self.http.post(f"{self.provider.url}/function/{name}{path}", data=body) as r:
            return r.status, await r.read()

    async def delete(self, name: str, namespace: str = "openfaas-fn") -> int:
        body = {"functionName": name, "namespace": namespace}
        async with self.http.delete(f"{self.provider.url}/system/functions", json=body) as r:
            await r.read()
            return r.status

    async def cleanup(self) -> None:
        for name, namespace in self.deployed:
            with contextlib.suppress(aiohttp.ClientError):
                await self.delete(name, namespace)


async def _tick() -> None:
    await asyncio.sleep(0.1)


HANDLER_ECHO_HTTP = """
import os, sys

def handle(event, context):
    print("handled " + event.body.decode(), flush=True)
    print("to stderr " + event.body.decode(), file=sys.stderr, flush=True)
    return {"statusCode": 200, "body": {"body": event.body.decode(), "path": event.path,
            "hostname": context.hostname, "secrets": os.environ.get("FAASBUS_SECRETS_DIR", "")},
            "headers": {"Content-Type": "application/json"}}
"""


def write_handler(directory: Path, source: str, requirements: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "handler.py").write_text(source)
    (directory / "requirements.txt").write_text(requirements)
    return directory


def build(state: Path, name: str, source: str, lang: str = "python3-http") -> str:
    """Build a bundle for ``name`` from ``source``; return its image."""
    image = f"{name}:latest"
    handler = write_handler(state.parent / "src" / name, source)
    build_bundle(name, image, lang, handler, state)
    return image


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
