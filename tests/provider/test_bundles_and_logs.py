"""Bundles built by build_bundle, served by replicas; their output read back from /system/logs."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp

from faasbus.provider import build_bundle, bundle_dir, load_bundle
from tests.provider.helpers import HANDLER_ECHO_HTTP, Functions, build, write_handler


async def _logs(functions: Functions, query: str) -> tuple[int, str, list[dict[str, Any]]]:
    url = f"{functions.provider.url}/system/logs?{query}"
    async with functions.http.get(url) as response:
        text = await response.text()
        if response.status != 200:
            return response.status, response.headers.get("Content-Type", ""), []
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        return response.status, response.headers.get("Content-Type", ""), lines


async def _wait_logs(
    functions: Functions, query: str, predicate: Any, timeout_s: float = 20
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        _, _, lines = await _logs(functions, query)
        if predicate(lines):
            return lines
        await asyncio.sleep(0.2)
    raise AssertionError(f"logs never matched: {lines[-10:]}")


async def test_python3_http_bundle_answers(
    functions: Functions, state_dir: Path, unique_name: str
) -> None:
    image = build(state_dir, unique_name, HANDLER_ECHO_HTTP)
    bundle = load_bundle(state_dir, image)
    assert bundle is not None
    assert bundle.root == bundle_dir(state_dir, unique_name)  # "NAME" means "NAME:latest"
    record = json.loads((bundle.root / "bundle.json").read_text())
    assert record["handler"] == "function/handler.py"
    assert record["lang"] == "python3-http"
    assert Path(record["python"]).exists()

    await functions.deploy({"service": unique_name, "image": image})
    status = await functions.wait_available(unique_name, 1)
    assert status["image"] == image
    code, body = await functions.invoke(unique_name, b"bundled", path="/sub/path?x=1")
    assert code == 200, body
    answer = json.loads(body)
    assert answer["body"] == "bundled"
    assert answer["path"] == "/sub/path"
    assert answer["hostname"].startswith(f"{unique_name}-")
    assert answer["secrets"].endswith(f"functions/openfaas-fn/{unique_name}/secrets")


async def test_bundle_requirements_are_installed_into_its_environment(
    functions: Functions, state_dir: Path, unique_name: str
) -> None:
    """PyYAML is in faasbus's environment already: pip finds it satisfied without a download."""
    source = "import yaml\n\ndef handle(event, context):\n    return yaml.safe_dump({'a': 1})\n"
    handler = write_handler(state_dir.parent / "src" / unique_name, source, "PyYAML\n")
    build_bundle(unique_name, unique_name, "python3-http", handler, state_dir)
    await functions.deploy({"service": unique_name, "image": unique_name})
    await functions.wait_available(unique_name, 1)
    assert await functions.invoke(unique_name) == (200, b"a: 1\n")


async def test_python3_bundle_answers(
    functions: Functions, state_dir: Path, unique_name: str
) -> None:
    source = "def handle(req):\n    return req.upper()\n"
    image = build(state_dir, unique_name, source, lang="python3")
    await functions.deploy({"service": unique_name, "image": image})
    await functions.wait_available(unique_name, 1)
    code, body = await functions.invoke(unique_name, b"shout")
    assert code == 200
    assert body.strip() == b"SHOUT"


async def test_failing_import_is_visible_and_isolated(
    functions: Functions, state_dir: Path, unique_name: str
) -> None:
    broken = f"{unique_name}-broken"
    image = build(
        state_dir, broken, "import no_such_module_anywhere\n\ndef handle(e, c):\n  pass\n"
    )
    await functions.deploy({"service": broken, "image": image})
    await functions.deploy({"service": unique_name, "envProcess": "cat"})
    await functions.wait_available(unique_name, 1)

    lines = await _wait_logs(
        functions,
        f"name={broken}&tail=-1",
        lambda ls: (
            any("no_such_module_anywhere" in line["text"] for line in ls)
            and any("restarting in" in line["text"] for line in ls)
        ),
    )
    assert all(line["name"] == broken for line in lines)
    status = await functions.status(broken)
    assert status["availableReplicas"] == 0
    assert status["restarts"] >= 1
    assert "exited with code" in status["lastError"]
    # The provider keeps serving the healthy function meanwhile.
    assert await functions.invoke(unique_name, b"still here") == (200, b"still here")


async def test_logs_tail_since_follow(
    functions: Functions, state_dir: Path, unique_name: str
) -> None:
    image = build(state_dir, unique_name, HANDLER_ECHO_HTTP)
    await functions.deploy({"service": unique_name, "image": image})
    await functions.wait_available(unique_name, 1)
    before = datetime.now(UTC) - timedelta(seconds=1)
    for index in range(5):
        assert (await functions.invoke(unique_name, f"call-{index}".encode()))[0] == 200
    lines = await _wait_logs(
        functions,
        f"name={unique_name}&namespace=openfaas-fn",
        lambda ls: (
            sum("handled call-" in line["text"] for line in ls) == 5
            and sum("to stderr call-" in line["text"] for line in ls) == 5
        ),
    )
    status, content_type, _ = await _logs(functions, f"name={unique_name}")
    assert status == 200
    assert content_type.startswith("application/x-ndjson")
    line = next(line for line in lines if "handled call-0" in line["text"])
    assert set(line) == {"name", "namespace", "instance", "timestamp", "text"}
    assert line["namespace"] == "openfaas-fn"
    assert line["instance"].startswith(f"{unique_name}-")
    moment = datetime.fromisoformat(line["timestamp"])
    assert before < moment < datetime.now(UTC) + timedelta(seconds=5)
    assert any("to stderr call-4" in line["text"] for line in lines)

    _, _, tail = await _logs(functions, f"name={unique_name}&tail=2")
    assert [line["text"] for line in tail] == [line["text"] for line in lines[-2:]]
    _, _, one_instance = await _logs(
        functions, f"name={unique_name}&instance={line['instance']}&tail=-1"
    )
    assert len(one_instance) == len(lines)

    future = (datetime.now(UTC) + timedelta(hours=1)).astimezone().isoformat()
    _, _, none = await _logs(functions, f"name={unique_name}&since={future.replace('+', '%2B')}")
    assert none == []
    since = (moment + timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=1)))
    _, _, later = await _logs(
        functions, f"name={unique_name}&since={since.isoformat().replace('+', '%2B')}"
    )
    assert "handled call-0" not in [entry["text"] for entry in later]
    assert any("handled call-4" in entry["text"] for entry in later)

    for bad in ("tail=abc", "since=yesterday", "since=2024-05-01T10:00:00", "follow=maybe"):
        status, _, _ = await _logs(functions, f"name={unique_name}&{bad}")
        assert status == 422, bad
    status, _, _ = await _logs(functions, "name=Bad_Name")
    assert status == 400

    # follow: history first, then a line written while the client listens; the client leaves.
    url = f"{functions.provider.url}/system/logs?name={unique_name}&tail=1&follow=true"
    async with functions.http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
        assert response.status == 200
        first = json.loads(await response.content.readline())
        assert first["text"] == lines[-1]["text"]
        assert (await functions.invoke(unique_name, b"live-line"))[0] == 200
        while True:
            entry = json.loads(await asyncio.wait_for(response.content.readline(), 20))
            if "handled live-line" in entry["text"]:
                break
