"""Secrets: the API's codes, files with mode 0600, updates reaching replicas, values never shown."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import stat
import time
from pathlib import Path

from faasbus.bus import Bus
from tests.provider.helpers import Functions, build

HANDLER_SECRET_DIGEST = """
import hashlib, os, pathlib

def handle(event, context):
    folder = pathlib.Path(os.environ["FAASBUS_SECRETS_DIR"])
    assert os.environ["secret_mount_path"] == str(folder)
    data = (folder / event.body.decode()).read_bytes()
    return {"statusCode": 200, "body": hashlib.sha256(data).hexdigest()}
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_secret_api_codes_and_values_never_shown(
    functions: Functions, state_dir: Path, bus: Bus, unique_name: str
) -> None:
    url = f"{functions.provider.url}/system/secrets"
    http = functions.http
    name = f"{unique_name}-key"
    first = f"s3cr3t-{unique_name}-first"
    second = f"s3cr3t-{unique_name}-second"
    responses: list[str] = []

    async def call(method: str, body: object | None = None, query: str = "") -> int:
        async with http.request(method, url + query, json=body) as response:
            responses.append(await response.text())
            return response.status

    assert await call("POST", {"name": name, "value": first}) == 202
    assert await call("POST", {"name": name, "value": first}) == 409
    assert await call("PUT", {"name": f"{name}-missing", "value": "x"}) == 404
    assert await call("DELETE", {"name": f"{name}-missing"}) == 404
    assert await call("POST", {"name": "Bad_Name", "value": "x"}) == 400
    raw = base64.b64encode(b"\x00binary\xff").decode()
    assert await call("POST", {"name": f"{name}-raw", "rawValue": raw}) == 202
    async with http.get(url) as response:
        listed = await response.json()
        responses.append(str(listed))
    names = {entry["name"] for entry in listed}
    assert {name, f"{name}-raw"} <= names
    assert all(set(entry) <= {"name", "namespace"} for entry in listed)

    stored = state_dir / "secrets" / "openfaas-fn" / name
    assert stored.read_text() == first
    assert _mode(stored) == 0o600
    assert (state_dir / "secrets" / "openfaas-fn" / f"{name}-raw").read_bytes() == b"\x00binary\xff"

    image = build(state_dir, unique_name, HANDLER_SECRET_DIGEST)
    await functions.deploy({"service": unique_name, "image": image, "secrets": [name]})
    await functions.wait_available(unique_name, 1)
    copy = state_dir / "functions" / "openfaas-fn" / unique_name / "secrets" / name
    assert _mode(copy) == 0o600
    assert _mode(copy.parent) == 0o700
    status, body = await functions.invoke(unique_name, name.encode())
    assert (status, body.decode()) == (200, hashlib.sha256(first.encode()).hexdigest())

    # An update reaches the running replica without a restart.
    pid_before = (await functions.status(unique_name))["availableReplicas"]
    assert await call("PUT", {"name": name, "value": second}) == 202
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, body = await functions.invoke(unique_name, name.encode())
        if body.decode() == hashlib.sha256(second.encode()).hexdigest():
            break
        await asyncio.sleep(0.1)
    assert body.decode() == hashlib.sha256(second.encode()).hexdigest()
    assert _mode(copy) == 0o600
    assert (await functions.status(unique_name))["availableReplicas"] == pid_before
    async with http.get(f"{functions.provider.url}/system/function/{unique_name}") as response:
        responses.append(await response.text())
    async with http.get(f"{functions.provider.url}/system/logs?name={unique_name}") as response:
        responses.append(await response.text())

    assert await call("DELETE", {"name": f"{name}-raw"}) == 202
    assert not (state_dir / "secrets" / "openfaas-fn" / f"{name}-raw").exists()

    for text in [*responses, functions.provider.log_text]:
        assert first not in text
        assert second not in text
