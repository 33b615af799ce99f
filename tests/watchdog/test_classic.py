"""classic mode end to end: a real watchdog forking real processes per request."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
from pathlib import Path

import aiohttp
import pytest

from tests.watchdog.helpers import FUNCTIONS, WatchdogFactory, process_gone, wait_until


def _env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


async def test_echo_200_with_duration_and_request_content_type(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": "cat"})
    async with http.post(
        f"{wd.url}/", data=b"hello classic", headers={"Content-Type": "text/x-greeting"}
    ) as resp:
        assert resp.status == 200
        assert await resp.read() == b"hello classic"
        assert resp.headers["Content-Type"] == "text/x-greeting"
        assert re.fullmatch(r"\d+\.\d{6}", resp.headers["X-Duration-Seconds"])


async def test_content_type_setting_overrides_the_request(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": "cat", "content_type": "application/json"})
    async with http.post(f"{wd.url}/", data=b"{}", headers={"Content-Type": "text/plain"}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"


async def test_header_environment_mapping_is_exact(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": "env"})
    async with http.post(
        f"{wd.url}/some/path?a=1&b=two%20words",
        data=b"12345",
        headers={
            "X-Call-Id": "call-123",
            "Content-Type": "text/plain",
            "x-lower-case": "lc",
            "X-Repeated": "first",
        },
    ) as resp:
        assert resp.status == 200
        env = _env_lines(await resp.text())
    http_vars = {k: v for k, v in env.items() if k.startswith("Http_")}
    assert http_vars == {
        "Http_X_Call_Id": "call-123",
        "Http_Content_Type": "text/plain",
        "Http_X_Lower_Case": "lc",
        "Http_X_Repeated": "first",
        "Http_Content_Length": "5",
        "Http_Method": "POST",
        "Http_Query": "a=1&b=two%20words",
        "Http_Path": "/some/path",
        "Http_Host": f"127.0.0.1:{wd.port}",
    }
    # The inherited environment is still there.
    assert env["PATH"]


async def test_chunked_request_sets_transfer_encoding(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": "env"})

    async def body():  # an async generator makes aiohttp send a chunked body
        yield b"abc"

    async with http.get(f"{wd.url}/", data=body()) as resp:
        env = _env_lines(await resp.text())
    assert env["Http_Transfer_Encoding"] == "chunked"
    assert env["Http_Content_Length"] == "-1"
    assert env["Http_Method"] == "GET"
    assert "Http_Query" not in env


async def test_cgi_headers_off_hides_the_request(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": "env", "cgi_headers": "false"})
    async with http.get(f"{wd.url}/", headers={"X-Call-Id": "x"}) as resp:
        env = _env_lines(await resp.text())
    assert not [k for k in env if k.startswith("Http_")]


async def test_marshal_request_wraps_headers_and_body(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": "cat", "marshal_request": "true"})
    async with http.post(
        f"{wd.url}/", data=b"\x00binary\xff", headers={"X-Call-Id": "m-1"}
    ) as resp:
        assert resp.status == 200
        document = json.loads(await resp.read())
    assert base64.b64decode(document["body"]["raw"]) == b"\x00binary\xff"
    assert document["header"]["X-Call-Id"] == ["m-1"]
    assert document["header"]["Content-Length"] == ["8"]


async def test_non_zero_exit_is_500_with_error_and_output(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": f"sh {FUNCTIONS / 'fail.sh'}"})
    async with http.post(f"{wd.url}/", data=b"x") as resp:
        assert resp.status == 500
        text = await resp.text()
    assert text.startswith("exit status 3\n")
    assert "some output" in text
    assert "oops on stderr" in text  # combine_output defaults to true


async def test_combine_output_off_sends_stderr_to_the_log(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start(
        {"fprocess": f"sh {FUNCTIONS / 'both_streams.sh'}", "combine_output": "false"}
    )
    async with http.post(f"{wd.url}/", data=b"x") as resp:
        assert resp.status == 200
        assert await resp.text() == "to stdout\n"
    await wait_until(lambda: "to stderr" in wd.stderr(), what="stderr line in the log")


async def test_combine_output_on_merges_stderr(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": f"sh {FUNCTIONS / 'both_streams.sh'}"})
    async with http.post(f"{wd.url}/", data=b"x") as resp:
        assert resp.status == 200
        assert await resp.text() == "to stdout\nto stderr\n"


async def test_missing_binary_is_500(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": "/nonexistent/binary"})
    async with http.get(f"{wd.url}/") as resp:
        assert resp.status == 500


async def test_exec_timeout_is_408_and_kills_the_whole_tree(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wd = watchdogs.start(
        {
            "fprocess": f"sh {FUNCTIONS / 'grandchild.sh'}",
            "exec_timeout": "500ms",
            "HOLD_DIR": str(tmp_path),
        }
    )
    async with http.get(f"{wd.url}/") as resp:
        assert resp.status == 408
        assert await resp.text() == "Killed process.\n"
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    await wait_until(lambda: process_gone(grandchild), timeout_s=5, what="grandchild killed")


@pytest.mark.parametrize(
    ("settings", "x_timeout"),
    [
        # exec_timeout is off in classic mode; the header alone bounds the call.
        pytest.param({}, "300ms", id="shortens"),
        pytest.param({"exec_timeout": "300ms"}, "60s", id="never-lengthens"),
    ],
)
async def test_x_timeout_and_exec_timeout(
    watchdogs: WatchdogFactory,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    settings: dict[str, str],
    x_timeout: str,
) -> None:
    wd = watchdogs.start(
        {"fprocess": f"sh {FUNCTIONS / 'hold.sh'}", "HOLD_DIR": str(tmp_path), **settings}
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(f"{wd.url}/", headers={"X-Timeout": x_timeout}) as resp:
        assert resp.status == 408
    assert loop.time() - started < 5


async def test_max_inflight_429_under_concurrency(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wd = watchdogs.start(
        {
            "fprocess": f"sh {FUNCTIONS / 'hold.sh'}",
            "max_inflight": "2",
            "HOLD_DIR": str(tmp_path),
        }
    )

    async def call() -> tuple[int, str]:
        async with http.get(f"{wd.url}/") as resp:
            return resp.status, await resp.text()

    held = [asyncio.create_task(call()) for _ in range(2)]
    await wait_until(lambda: len(list(tmp_path.glob("started.*"))) == 2, what="two calls in flight")
    async with http.get(f"{wd.url}/_/ready") as resp:
        assert resp.status == 429
    extra = await asyncio.gather(*(call() for _ in range(3)))
    assert [status for status, _ in extra] == [429, 429, 429]
    async with http.get(f"{wd.url}/") as resp:
        assert resp.status == 429
        assert resp.headers["X-OpenFaaS-Internal"] == "watchdog"
    (tmp_path / "release").touch()
    assert await asyncio.gather(*held) == [(200, "released\n"), (200, "released\n")]
    async with http.get(f"{wd.url}/_/ready") as resp:
        assert resp.status == 200


@pytest.mark.parametrize("body_size", [0, 3 * 1024 * 1024])
async def test_bodies_of_any_size_round_trip(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, body_size: int
) -> None:
    wd = watchdogs.start({"fprocess": "cat"})
    body = os.urandom(body_size)
    # BytesIO: aiohttp warns about sending large raw bytes from the event loop.
    async with http.post(f"{wd.url}/", data=io.BytesIO(body)) as resp:
        assert resp.status == 200
        assert await resp.read() == body


async def test_prefix_logs_off_copies_raw_lines(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start(
        {
            "fprocess": f"sh {FUNCTIONS / 'both_streams.sh'}",
            "combine_output": "false",
            "prefix_logs": "false",
        }
    )
    async with http.post(f"{wd.url}/", data=b"x") as resp:
        assert resp.status == 200
    await wait_until(
        lambda: "to stderr" in wd.stderr().splitlines(), what="raw stderr line in the log"
    )


async def test_body_over_the_limit_is_413(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession
) -> None:
    wd = watchdogs.start({"fprocess": "cat", "FAASBUS_MAX_BODY_BYTES": "16"})
    async with http.post(f"{wd.url}/", data=b"x" * 100) as resp:
        assert resp.status == 413
    async with http.post(f"{wd.url}/", data=b"x" * 16) as resp:
        assert resp.status == 200
