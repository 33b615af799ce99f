"""Start-up, health, readiness, the lock file and the SIGTERM drain, on real processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.watchdog.helpers import FUNCTIONS, WatchdogFactory, base_environment, wait_until


async def test_announces_once_writes_lock_and_is_healthy(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wd = watchdogs.start({"fprocess": "cat"})
    assert wd.announce == f"faasbus-watchdog listening on 127.0.0.1:{wd.port}\n".encode()
    assert (tmp_path / "watchdog.lock").exists()
    async with http.get(f"{wd.url}/_/health") as resp:
        assert resp.status == 200
    async with http.get(f"{wd.url}/_/ready") as resp:
        assert resp.status == 200
    wd.signal(signal.SIGTERM)
    assert wd.wait() == 0
    assert wd.rest_of_stdout() == b""  # exactly one line on stdout, ever
    assert not (tmp_path / "watchdog.lock").exists()


async def test_suppress_lock_writes_no_lock_file(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wd = watchdogs.start({"fprocess": "cat", "suppress_lock": "true"})
    assert not (tmp_path / "watchdog.lock").exists()
    async with http.get(f"{wd.url}/_/health") as resp:
        assert resp.status == 200


async def test_health_503_when_the_lock_file_is_removed(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wd = watchdogs.start({"fprocess": "cat"})
    (tmp_path / "watchdog.lock").unlink()
    async with http.get(f"{wd.url}/_/health") as resp:
        assert resp.status == 503


async def test_sigterm_health_503_then_drains_in_flight_then_exits_0(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wd = watchdogs.start(
        {
            "fprocess": f"sh {FUNCTIONS / 'hold.sh'}",
            "HOLD_DIR": str(tmp_path),
            "healthcheck_interval": "1s",
            "write_timeout": "20s",
        }
    )

    async def call() -> tuple[int, str]:
        async with http.get(f"{wd.url}/") as resp:
            return resp.status, await resp.text()

    in_flight = asyncio.create_task(call())
    await wait_until(lambda: any(tmp_path.glob("started.*")), what="call in flight")
    wd.signal(signal.SIGTERM)

    async def unhealthy() -> bool:
        async with http.get(f"{wd.url}/_/health") as resp:
            return resp.status == 503

    await wait_until(unhealthy, what="health 503 after SIGTERM")
    assert not (tmp_path / "watchdog.lock").exists()
    async with http.get(f"{wd.url}/_/ready") as resp:
        assert resp.status == 503
    # Past healthcheck_interval the listener closes, yet the process waits for the call.
    await wait_until(lambda: '"draining"' in wd.stderr(), what="drain phase")
    assert wd.proc.poll() is None
    (tmp_path / "release").touch()
    assert await in_flight == (200, "released\n")
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, wd.wait) == 0


async def test_drain_is_bounded_by_write_timeout(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wd = watchdogs.start(
        {
            "fprocess": f"sh {FUNCTIONS / 'hold.sh'}",
            "HOLD_DIR": str(tmp_path),
            "write_timeout": "1s",
            "exec_timeout": "0",
        }
    )

    async def call() -> int:
        try:
            async with http.get(f"{wd.url}/") as resp:
                return resp.status
        except aiohttp.ClientError:
            return -1

    in_flight = asyncio.create_task(call())
    await wait_until(lambda: any(tmp_path.glob("started.*")), what="call in flight")
    loop = asyncio.get_running_loop()
    started = loop.time()
    wd.signal(signal.SIGTERM)
    assert await loop.run_in_executor(None, wd.wait) == 0
    assert loop.time() - started < 5
    # write_timeout also bounds the call itself: it ends as a timeout, never a hang.
    assert await in_flight in {408, -1}


async def test_ready_path_asks_the_function(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": "env", "ready_path": "/healthz"})
    async with http.get(f"{wd.url}/_/ready") as resp:
        assert resp.status == 200
        assert "Http_Path=/healthz" in await resp.text()


def _run_to_exit(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = base_environment(tmp_path)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "faasbus.watchdog"],
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"fprocess": "cat", "exec_timeout": "soon"}, "exec_timeout"),
        ({"fprocess": "cat", "max_inflight": "-1"}, "max_inflight"),
        ({"fprocess": "cat", "cgi_headers": "maybe"}, "cgi_headers"),
        ({"fprocess": "cat", "mode": "turbo"}, "mode"),
        ({"mode": "http", "fprocess": "cat"}, "upstream_url"),
        ({}, "fprocess"),
    ],
)
def test_bad_setting_exits_2_naming_the_variable(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    result = _run_to_exit(tmp_path, env)
    assert result.returncode == 2
    assert variable in result.stderr
    assert result.stdout == ""


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("faasbus-watchdog")
    assert script.exists()
