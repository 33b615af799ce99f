"""http mode end to end: a real upstream process kept warm behind the watchdog."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.watchdog.helpers import FUNCTIONS, WatchdogFactory, process_gone, wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_env(upstream_port: int, **extra: str) -> dict[str, str]:
    return {
        "mode": "http",
        "fprocess": f"{sys.executable} {FUNCTIONS / 'upstream.py'}",
        "upstream_url": f"http://127.0.0.1:{upstream_port}",
        "UPSTREAM_PORT": str(upstream_port),
        **extra,
    }


async def test_proxies_status_headers_and_body(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start(_http_env(_free_port()))
    async with http.put(
        f"{wd.url}/echo?status=201&x=1",
        data=b"payload",
        headers={"X-Custom": "c", "Content-Type": "text/plain"},
    ) as resp:
        assert resp.status == 201
        assert await resp.read() == b"payload"
        assert resp.headers["X-Upstream"] == "yes"
        assert resp.headers["X-Seen-Path"] == "/echo?status=201&x=1"
        assert resp.headers["X-Seen-Method"] == "PUT"
        assert resp.headers["X-Seen-Custom"] == "c"
        assert resp.headers["Content-Type"] == "text/plain"
        assert "X-Duration-Seconds" in resp.headers
        assert "X-OpenFaaS-Internal" not in resp.headers
    # The function's own 5xx passes through unmarked.
    async with http.get(f"{wd.url}/echo?status=503") as resp:
        assert resp.status == 503
        assert "X-OpenFaaS-Internal" not in resp.headers


async def test_child_output_is_pumped_into_the_log(watchdogs: WatchdogFactory) -> None:
    wd = watchdogs.start(_http_env(_free_port()))
    await wait_until(
        lambda: (
            "upstream says hello on stdout" in wd.stderr()
            and "upstream says hello on stderr" in wd.stderr()
        ),
        what="child output in the log",
    )


async def test_early_requests_wait_for_a_slow_start(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    port = _free_port()
    upstream = _free_port()
    wd = watchdogs.start(_http_env(upstream, UPSTREAM_DELAY="1.5", port=str(port)), announced=False)
    url = f"http://127.0.0.1:{port}"

    async def listening() -> bool:
        try:
            async with http.get(f"{url}/_/health") as resp:
                return resp.status == 503  # listening, not ready yet
        except aiohttp.ClientConnectionError:
            return False

    await wait_until(listening, what="watchdog listening before the upstream")

    async def call(i: int) -> int:
        async with http.post(f"{url}/echo", data=str(i).encode()) as resp:
            assert await resp.read() == str(i).encode()
            return resp.status

    statuses = await asyncio.gather(*(call(i) for i in range(5)))
    assert statuses == [200] * 5
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, wd.wait_announced)
    assert wd.port == port
    async with http.get(f"{url}/_/health") as resp:
        assert resp.status == 200


async def test_exec_timeout_is_504_marked_internal(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start(_http_env(_free_port(), exec_timeout="300ms"))
    async with http.get(f"{wd.url}/slow") as resp:
        assert resp.status == 504
        assert resp.headers["X-OpenFaaS-Internal"] == "watchdog"


async def test_x_timeout_shortens_the_upstream_call(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start(_http_env(_free_port()))  # exec_timeout 30s by default
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(f"{wd.url}/slow", headers={"X-Timeout": "0.3s"}) as resp:
        assert resp.status == 504
    assert loop.time() - started < 5


async def test_upstream_error_is_500_marked_internal(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start(_http_env(_free_port()))
    async with http.get(f"{wd.url}/abort") as resp:
        assert resp.status == 500
        assert resp.headers["X-OpenFaaS-Internal"] == "watchdog"
    async with http.get(f"{wd.url}/echo") as resp:  # the pool recovers
        assert resp.status == 200


async def test_child_death_makes_the_watchdog_exit_non_zero(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start(_http_env(_free_port()))
    async with http.get(f"{wd.url}/exit") as resp:
        assert resp.status == 200
    loop = asyncio.get_running_loop()
    code = await loop.run_in_executor(None, wd.wait)
    assert code != 0
    assert "function_exited" in wd.stderr()


async def test_child_failing_at_start_exits_non_zero_without_announcing(
    watchdogs: WatchdogFactory,
) -> None:
    wd = watchdogs.start(
        {
            "mode": "http",
            "fprocess": "false",
            "upstream_url": f"http://127.0.0.1:{_free_port()}",
        },
        announced=False,
    )
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, wd.wait) != 0
    assert wd.rest_of_stdout() == b""


async def test_sigterm_stops_the_child(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    upstream = _free_port()
    wd = watchdogs.start(_http_env(upstream))
    wd.signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, wd.wait) == 0

    async def upstream_closed() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            return True
        writer.close()
        await writer.wait_closed()
        return False

    await wait_until(upstream_closed, what="upstream stopped with the watchdog")


async def test_kill_9_of_the_watchdog_takes_the_child_with_it(watchdogs: WatchdogFactory) -> None:
    upstream = _free_port()
    wd = watchdogs.start(_http_env(upstream))
    children = Path(f"/proc/{wd.pid}/task/{wd.pid}/children").read_text().split()
    assert children, "the http-mode function process should be running"

    wd.kill()

    for child in children:
        await wait_until(lambda pid=int(child): process_gone(pid), what=f"function {child} gone")
