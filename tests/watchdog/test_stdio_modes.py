"""serializing, streaming and static modes end to end."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest

from tests.watchdog.helpers import FUNCTIONS, WatchdogFactory, wait_until


async def test_serializing_answers_whole_output(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"mode": "serializing", "fprocess": "cat"})
    async with http.post(f"{wd.url}/x", data=b"serialized") as resp:
        assert resp.status == 200
        assert await resp.read() == b"serialized"
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert re.fullmatch(r"\d+\.\d{6}", resp.headers["X-Duration-Seconds"])


async def test_serializing_keeps_stderr_out_of_the_response(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"mode": "serializing", "fprocess": f"sh {FUNCTIONS / 'both_streams.sh'}"})
    async with http.post(f"{wd.url}/", data=b"x", headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 200
        assert await resp.text() == "to stdout\n"
        assert resp.headers["Content-Type"] == "text/plain"
    await wait_until(lambda: "to stderr" in wd.stderr(), what="stderr in the log")


@pytest.mark.parametrize(
    ("script", "settings", "reason"),
    [
        pytest.param("fail.sh", {}, "exit status 3", id="error"),
        pytest.param("hold.sh", {"exec_timeout": "300ms"}, "timed out", id="timeout"),
    ],
)
async def test_serializing_failure_is_500_with_the_reason(
    watchdogs: WatchdogFactory,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    script: str,
    settings: dict[str, str],
    reason: str,
) -> None:
    wd = watchdogs.start(
        {
            "mode": "serializing",
            "fprocess": f"sh {FUNCTIONS / script}",
            "HOLD_DIR": str(tmp_path),
            **settings,
        }
    )
    async with http.get(f"{wd.url}/") as resp:
        assert resp.status == 500
        assert reason in await resp.text()


async def test_streaming_sends_output_as_written(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wd = watchdogs.start(
        {
            "mode": "streaming",
            "fprocess": f"sh {FUNCTIONS / 'stream.sh'}",
            "HOLD_DIR": str(tmp_path),
        }
    )
    async with http.post(f"{wd.url}/", data=b"in") as resp:
        assert resp.status == 200
        # The first line arrives while the function is still running (held until released).
        first = await asyncio.wait_for(resp.content.readline(), timeout=10)
        assert first == b"first\n"
        (tmp_path / "release").touch()
        assert await resp.content.read() == b"second\n"


async def test_streaming_failure_before_output_is_500(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"mode": "streaming", "fprocess": "false"})
    async with http.get(f"{wd.url}/") as resp:
        assert resp.status == 500


async def test_streaming_echoes_a_chunked_body(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"mode": "streaming", "fprocess": "cat"})

    async def body():
        for part in (b"one ", b"two ", b"three"):
            yield part

    async with http.post(f"{wd.url}/", data=body()) as resp:
        assert resp.status == 200
        assert await resp.read() == b"one two three"


async def test_static_serves_files_and_index(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    public = tmp_path / "public"
    (public / "sub").mkdir(parents=True)
    (public / "index.html").write_text("<h1>home</h1>")
    (public / "sub" / "data.txt").write_text("data")
    (tmp_path / "secret.txt").write_text("secret")
    wd = watchdogs.start({"mode": "static", "static_path": str(public)})
    async with http.get(f"{wd.url}/") as resp:
        assert resp.status == 200
        assert await resp.text() == "<h1>home</h1>"
        assert resp.headers["Content-Type"].startswith("text/html")
    async with http.get(f"{wd.url}/sub/data.txt") as resp:
        assert resp.status == 200
        assert await resp.text() == "data"
    async with http.get(f"{wd.url}/missing.txt") as resp:
        assert resp.status == 404
    async with http.get(f"{wd.url}/..%2Fsecret.txt") as resp:
        assert resp.status == 404
    async with http.post(f"{wd.url}/sub/data.txt") as resp:
        assert resp.status == 405
