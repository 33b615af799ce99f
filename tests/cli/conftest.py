"""Fixtures for CLI tests: a recording HTTP server standing in for a gateway, and a CliRunner.

The CLI is an HTTP client, so its wire behaviour (which requests, bodies, headers, and what it does
with each status) is checked against a real local HTTP server that records every request and
answers from a small route table. The real gateway is exercised by tests/e2e.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from faasbus.cli import cli


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | list[Any] | dict[str, Any] = b""
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Recorded], Reply]


@dataclass
class FakeGateway:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    routes: dict[tuple[str, str], Route | Reply] = field(default_factory=dict)

    def on(self, method: str, path: str, reply: Route | Reply) -> None:
        self.routes[(method, path)] = reply


def _handler(gateway: FakeGateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorded = Recorded(self.command, self.path, dict(self.headers.items()), body)
            gateway.requests.append(recorded)
            route = gateway.routes.get((self.command, self.path.split("?")[0]))
            reply = (
                Reply(404, b"not found\n")
                if route is None
                else route
                if isinstance(route, Reply)
                else route(recorded)
            )
            payload = reply.body
            if isinstance(payload, list | dict):
                payload = json.dumps(payload).encode()
            elif isinstance(payload, str):
                payload = payload.encode()
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815

    return Handler


@pytest.fixture
def fake_gateway() -> Iterator[FakeGateway]:
    gateway = FakeGateway(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(gateway))
    server.daemon_threads = True
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-gateway", daemon=True
    )
    thread.start()
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """An empty state directory, so the user's real one is never read."""
    directory = tmp_path / "state"
    directory.mkdir()
    return directory


@pytest.fixture
def run_cli(state_dir: Path) -> Callable[..., Result]:
    """Run ``faasbus ARGS`` in-process with a clean environment pointing at ``state_dir``."""
    runner = CliRunner()

    def run(
        *args: str,
        input: bytes | str | None = None,  # noqa: A002 - CliRunner's name
        env: dict[str, str] | None = None,
    ) -> Result:
        base: dict[str, str | None] = {
            "OPENFAAS_URL": None,
            "FAASBUS_USER": None,
            "FAASBUS_PASSWORD": None,
            "FAASBUS_STATE_DIR": str(state_dir),
        }
        base.update(env or {})
        return runner.invoke(cli, list(args), input=input, env=base, catch_exceptions=False)

    return run
