"""The supervisor of `faasbus up` with real child processes: restart, stop, kill, readiness."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from faasbus.bus import free_port
from faasbus.cli.errors import LauncherError
from faasbus.cli.supervisor import Child, ChildSpec, Printer


def alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[1].split()[0] != "Z"


def python(code: str, name: str = "child", **kwargs: object) -> ChildSpec:
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "PYTHONUNBUFFERED": "1"}
    return ChildSpec(name, (sys.executable, "-c", code), env, **kwargs)  # type: ignore[arg-type]


async def wait_until(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_output_is_prefixed_and_a_crash_is_restarted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    child = Child(
        python("print('hello from child'); raise SystemExit(3)", "crashy"), Printer(colour=False)
    )
    child.start()
    try:
        await wait_until(lambda: len(child.pids) >= 2)
    finally:
        await child.stop()
    out = capsys.readouterr().out
    assert "      crashy | hello from child" in out
    assert "crashy exited with code 3; restarting in 0.5s" in out
    assert not any(alive(pid) for pid in child.pids)


async def test_stop_right_after_start_stops_the_child_at_once() -> None:
    child = Child(python("import time; time.sleep(60)"), Printer(colour=False), stop_timeout_s=20)
    child.start()
    await asyncio.sleep(0)  # the spawn is in flight
    started = time.monotonic()
    await child.stop()
    assert time.monotonic() - started < 10
    assert child.pids
    assert not any(alive(pid) for pid in child.pids)


async def test_a_child_ignoring_sigterm_is_killed_with_its_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(marker)!r}, 'w').write(str(p.pid))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = Child(python(code, "stubborn"), Printer(colour=False), stop_timeout_s=1.0)
    child.start()
    await wait_until(lambda: marker.exists() and marker.read_text().strip() != "")
    grandchild = int(marker.read_text())
    await child.stop()
    assert not alive(child.pids[-1])
    await wait_until(lambda: not alive(grandchild), 10)


async def test_readiness_from_the_health_url() -> None:
    port = free_port()
    server = (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200)\n"
        "        self.send_header('Content-Length', '0')\n"
        "        self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    child = Child(
        python(server, "web", health_url=f"http://127.0.0.1:{port}/healthz"), Printer(colour=False)
    )
    child.start()
    try:
        await child.wait_ready(20)
        assert child.ready.is_set()
    finally:
        await child.stop()
    never = Child(
        python(
            "import time; time.sleep(60)", "mute", health_url=f"http://127.0.0.1:{free_port()}/"
        ),
        Printer(colour=False),
        stop_timeout_s=5,
    )
    never.start()
    try:
        with pytest.raises(LauncherError, match="mute did not become ready within 1s"):
            await never.wait_ready(1)
    finally:
        await never.stop()
