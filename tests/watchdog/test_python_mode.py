"""python mode end to end: handlers imported once and called in the watchdog process."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from faasbus.watchdog import template_names, template_path
from tests.watchdog.helpers import (
    WatchdogFactory,
    WatchdogProcess,
    base_environment,
    wait_until,
)


def _handler(tmp_path: Path, source: str, name: str = "handler.py") -> Path:
    folder = tmp_path / "function"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


Serve = Callable[..., WatchdogProcess]


@pytest.fixture
def serve(watchdogs: WatchdogFactory, tmp_path: Path) -> Serve:
    """``serve(source, env=None)``: a python-mode watchdog with `source` as its handler.py."""

    def start(source: str, env: dict[str, str] | None = None) -> WatchdogProcess:
        path = _handler(tmp_path, source)
        return watchdogs.start({"FAASBUS_HANDLER": str(path), **(env or {})})

    return start


async def _get_text(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        return await resp.text()


async def test_http_handler_sets_status_headers_and_body(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    wd = serve(
        """
        def handle(event, context):
            return {
                "statusCode": 201,
                "headers": {"X-Handler": "yes", "Content-Type": "application/x-custom"},
                "body": "path=%s method=%s query=%s body=%s host=%s" % (
                    event.path, event.method, sorted(event.query.items()),
                    event.body.decode(), context.hostname,
                ),
            }
        """,
        {"HOSTNAME": "replica-1"},
    )
    async with http.post(f"{wd.url}/a/b?x=1&y=2&x=3", data=b"hi") as resp:
        assert resp.status == 201
        assert resp.headers["X-Handler"] == "yes"
        assert resp.headers["Content-Type"] == "application/x-custom"
        assert "X-Duration-Seconds" in resp.headers
        assert await resp.text() == (
            "path=/a/b method=POST query=[('x', '1'), ('y', '2')] body=hi host=replica-1"
        )


async def test_http_handler_body_types(serve: Serve, http: aiohttp.ClientSession) -> None:
    wd = serve("""
        def handle(event, context):
            kind = event.query.get("kind")
            if kind == "dict":
                return {"statusCode": 200, "body": {"ok": True, "n": [1, 2]}}
            if kind == "bytes":
                return {"body": b"\\x00\\x01"}
            if kind == "plain":
                return "just text"
            if kind == "list":
                return [1, 2, 3]
            if kind == "none":
                return None
            return {"statusCode": 204}
        """)
    async with http.get(f"{wd.url}/?kind=dict") as resp:
        assert resp.headers["Content-Type"] == "application/json"
        assert await resp.json() == {"ok": True, "n": [1, 2]}
    async with http.get(f"{wd.url}/?kind=bytes") as resp:
        assert await resp.read() == b"\x00\x01"
        assert resp.headers["Content-Type"] == "application/octet-stream"
    async with http.get(f"{wd.url}/?kind=plain") as resp:
        assert resp.status == 200
        assert await resp.text() == "just text"
    async with http.get(f"{wd.url}/?kind=list") as resp:
        assert json.loads(await resp.read()) == [1, 2, 3]
    async with http.get(f"{wd.url}/?kind=none") as resp:
        assert resp.status == 200
        assert await resp.read() == b""
    async with http.get(f"{wd.url}/") as resp:
        assert resp.status == 204


async def test_async_handler(serve: Serve, http: aiohttp.ClientSession) -> None:
    wd = serve("""
        import asyncio

        async def handle(event, context):
            await asyncio.sleep(0.01)
            return {"statusCode": 202, "body": event.headers.get("x-thing", "")}
        """)
    async with http.get(f"{wd.url}/", headers={"X-Thing": "async"}) as resp:
        assert resp.status == 202
        assert await resp.text() == "async"


async def test_slow_sync_handler_does_not_block_health(
    serve: Serve, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    started = tmp_path / "started"
    wd = serve(f"""
        import time
        from pathlib import Path

        def handle(event, context):
            Path({str(started)!r}).touch()
            while not Path({str(release)!r}).exists():
                time.sleep(0.01)
            return "done"
        """)

    slow = asyncio.create_task(_get_text(http, f"{wd.url}/"))
    await wait_until(started.exists, what="slow handler running")
    async with http.get(f"{wd.url}/_/health", timeout=aiohttp.ClientTimeout(total=2)) as resp:
        assert resp.status == 200
    assert not slow.done()
    release.touch()
    assert await slow == "done"


async def test_blocking_sync_handlers_run_concurrently(
    serve: Serve, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    wd = serve(f"""
        import time
        import uuid
        from pathlib import Path

        def handle(event, context):
            Path({str(tmp_path)!r}, "started-" + uuid.uuid4().hex).touch()
            while not Path({str(release)!r}).exists():
                time.sleep(0.01)
            return "done"
        """)

    calls = [asyncio.create_task(_get_text(http, f"{wd.url}/")) for _ in range(4)]
    # Blocked threads make the pool grow: all four run at once.
    await wait_until(lambda: len(list(tmp_path.glob("started-*"))) == 4, what="4 concurrent calls")
    release.touch()
    assert await asyncio.gather(*calls) == ["done"] * 4


# A TimeoutError the handler raises is its own failure (500), not the call's time limit (504).
@pytest.mark.parametrize("exception", ["RuntimeError", "TimeoutError"])
async def test_handler_exception_is_500_without_traceback(
    serve: Serve, http: aiohttp.ClientSession, exception: str
) -> None:
    wd = serve(f"""
        def handle(event, context):
            raise {exception}("secret detail")
        """)
    async with http.get(f"{wd.url}/") as resp:
        assert resp.status == 500
        text = await resp.text()
    assert "secret detail" not in text
    assert "Traceback" not in text
    await wait_until(lambda: "secret detail" in wd.stderr(), what="error logged")


async def test_exception_traceback_in_body_with_write_debug(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    wd = serve(
        """
        async def handle(event, context):
            raise RuntimeError("debug detail")
        """,
        {"write_debug": "true"},
    )
    async with http.get(f"{wd.url}/") as resp:
        assert resp.status == 500
        text = await resp.text()
    assert "Traceback" in text
    assert "debug detail" in text


async def test_timeout_is_504_and_x_timeout_shortens(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    wd = serve(
        """
        import asyncio

        async def handle(event, context):
            await asyncio.sleep(float(event.query.get("sleep", "0")))
            return "ok"
        """,
        {"exec_timeout": "2s"},
    )
    async with http.get(f"{wd.url}/?sleep=0.5", headers={"X-Timeout": "100ms"}) as resp:
        assert resp.status == 504
        assert resp.headers["X-OpenFaaS-Internal"] == "watchdog"
    # X-Timeout asks for more than exec_timeout: exec_timeout still wins.
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(f"{wd.url}/?sleep=10", headers={"X-Timeout": "60s"}) as resp:
        assert resp.status == 504
    assert loop.time() - started < 5
    async with http.get(f"{wd.url}/?sleep=0") as resp:
        assert resp.status == 200


async def test_python3_template_signature(serve: Serve, http: aiohttp.ClientSession) -> None:
    wd = serve(
        """
        def handle(req):
            return "got: " + req
        """,
        {"FAASBUS_TEMPLATE": "python3"},
    )
    async with http.post(f"{wd.url}/", data="héllo".encode()) as resp:
        assert resp.status == 200
        assert await resp.text() == "got: héllo\n"


async def test_sibling_modules_import_both_ways(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    _handler(tmp_path, "VALUE = 'sibling'\n", name="helpers.py")
    path = _handler(
        tmp_path,
        """
        import helpers
        from .helpers import VALUE

        def handle(event, context):
            return helpers.VALUE + "/" + VALUE
        """,
    )
    wd = watchdogs.start({"FAASBUS_HANDLER": f"{path.parent}:handle"})
    async with http.get(f"{wd.url}/") as resp:
        assert await resp.text() == "sibling/sibling"


async def test_handler_output_never_reaches_stdout(
    serve: Serve, http: aiohttp.ClientSession
) -> None:
    wd = serve("""
        print("printed at import")

        def handle(event, context):
            print("printed per call")
            return "ok"
        """)
    async with http.get(f"{wd.url}/") as resp:
        assert resp.status == 200
    wd.signal(signal.SIGTERM)
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, wd.wait) == 0
    assert wd.rest_of_stdout() == b""
    assert "printed at import" in wd.stderr()
    assert "printed per call" in wd.stderr()


@pytest.mark.parametrize(
    ("source", "spec_suffix", "expected"),
    [
        ("import not_a_module_anywhere\n", "", "not_a_module_anywhere"),
        ("def handle(:\n", "", "SyntaxError"),
        ("def other(event, context):\n    return 1\n", "", "no 'handle'"),
        ("def handle(event, context):\n    return 1\n", ":missing", "no 'missing'"),
    ],
)
def test_failing_import_exits_non_zero_before_announcing(
    tmp_path: Path, source: str, spec_suffix: str, expected: str
) -> None:
    path = _handler(tmp_path, source)
    env = base_environment(tmp_path)
    env["FAASBUS_HANDLER"] = f"{path}{spec_suffix}"
    result = subprocess.run(
        [sys.executable, "-m", "faasbus.watchdog"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert expected in result.stderr


@pytest.mark.parametrize("lang", ["python3", "python3-http"])
async def test_shipped_templates_run(
    watchdogs: WatchdogFactory, http: aiohttp.ClientSession, tmp_path: Path, lang: str
) -> None:
    assert lang in template_names()
    folder = tmp_path / lang
    shutil.copytree(template_path(lang), folder)
    assert (folder / "requirements.txt").exists()
    wd = watchdogs.start({"FAASBUS_HANDLER": str(folder), "FAASBUS_TEMPLATE": lang})
    async with http.post(f"{wd.url}/echo?q=1", data=b"template body") as resp:
        assert resp.status == 200
        text = await resp.text()
    assert "template body" in text
    if lang == "python3-http":
        assert json.loads(text)["query"] == {"q": "1"}


def test_unknown_template_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown template"):
        template_path("cobol")
