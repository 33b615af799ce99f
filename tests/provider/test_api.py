"""The faas-provider HTTP API with host-command functions: deploy, list, status, scale, delete."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from faasbus.bus import Bus, Endpoint, names
from tests.provider.conftest import ready_endpoints
from tests.provider.helpers import Functions, ProviderProcess


async def _wait_endpoints(bus: Bus, name: str, count: int, timeout_s: float = 30) -> list[Endpoint]:
    deadline = time.monotonic() + timeout_s
    found: list[Endpoint] = []
    while time.monotonic() < deadline:
        found = await ready_endpoints(bus, name)
        if len(found) == count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name}: {len(found)} ready endpoints, wanted {count}")


async def test_host_command_deploy_invoke_list_status_delete(
    functions: Functions, bus: Bus, unique_name: str
) -> None:
    await functions.deploy({"service": unique_name, "envProcess": "cat"})
    status = await functions.wait_available(unique_name, 1)
    assert status["name"] == unique_name
    assert status["replicas"] == 1
    assert status["envProcess"] == "cat"
    assert status["namespace"] == "openfaas-fn"
    assert status["createdAt"].endswith("Z")
    assert status["usage"]["totalMemoryBytes"] > 0

    assert await functions.invoke(unique_name, b"hello provider") == (200, b"hello provider")
    assert await functions.invoke(f"{unique_name}.openfaas-fn", b"dotted") == (200, b"dotted")

    async with functions.http.get(f"{functions.provider.url}/system/functions") as response:
        assert response.status == 200
        listed = {f["name"]: f for f in await response.json()}
    assert listed[unique_name]["availableReplicas"] == 1

    [endpoint] = await _wait_endpoints(bus, unique_name, 1)
    assert endpoint.url.startswith("http://127.0.0.1:")
    assert endpoint.pid > 0
    assert endpoint.provider.endswith(f":{functions.provider.pid}")

    # The stored desired state keeps OpenFaaS field names at the top level (connectors read it).
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    stored = json.loads((await kv.get(f"openfaas-fn.{unique_name}")).value or b"{}")
    assert stored["service"] == unique_name
    assert stored["replicas"] == 1
    assert "annotations" in stored
    assert "createdAt" in stored

    assert await functions.delete(unique_name) == 202
    async with functions.http.get(
        f"{functions.provider.url}/system/function/{unique_name}"
    ) as response:
        assert response.status == 404
    await _wait_endpoints(bus, unique_name, 0)
    status_code, _ = await functions.invoke(unique_name, b"gone")
    assert status_code == 404


async def test_scale_to_n_and_to_zero(functions: Functions, bus: Bus, unique_name: str) -> None:
    await functions.deploy(
        {
            "service": unique_name,
            "envProcess": "cat",
            "labels": {"com.openfaas.scale.zero": "true"},
        }
    )
    await functions.wait_available(unique_name, 1)
    assert await functions.scale(unique_name, 3) == 202
    status = await functions.wait_available(unique_name, 3)
    assert status["replicas"] == 3
    endpoints = await _wait_endpoints(bus, unique_name, 3)
    assert len({e.url for e in endpoints}) == 3
    assert len({e.instance for e in endpoints}) == 3
    assert all(e.instance.startswith(f"{unique_name}-") for e in endpoints)

    assert await functions.scale(unique_name, 0) == 202
    status = await functions.wait_available(unique_name, 0)
    assert status["replicas"] == 0
    await _wait_endpoints(bus, unique_name, 0)

    # A request for a function at zero wakes it (the proxy holds the request meanwhile).
    assert await functions.invoke(unique_name, b"wake up") == (200, b"wake up")
    assert (await functions.status(unique_name))["replicas"] == 1


async def test_scale_is_clamped_by_labels(functions: Functions, unique_name: str) -> None:
    await functions.deploy(
        {
            "service": unique_name,
            "envProcess": "cat",
            "labels": {"com.openfaas.scale.min": "2", "com.openfaas.scale.max": "3"},
        }
    )
    status = await functions.wait_available(unique_name, 2)
    assert status["replicas"] == 2
    assert await functions.scale(unique_name, 10) == 202
    assert (await functions.status(unique_name))["replicas"] == 3
    # No scale-to-zero label: 0 is clamped to the minimum.
    assert await functions.scale(unique_name, 0) == 202
    assert (await functions.status(unique_name))["replicas"] == 2


async def test_update_replaces_replicas_with_new_environment(
    functions: Functions, unique_name: str
) -> None:
    body = {"service": unique_name, "envProcess": "env", "envVars": {"GREETING": "one"}}
    await functions.deploy(body)
    await functions.wait_available(unique_name, 1)
    _, output = await functions.invoke(unique_name)
    assert b"GREETING=one" in output
    assert b"FAASBUS_NATS_URL" not in output  # the provider's own settings are not passed on

    body["envVars"] = {"GREETING": "two"}
    async with functions.http.put(f"{functions.provider.url}/system/functions", json=body) as r:
        assert r.status == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, output = await functions.invoke(unique_name)
        if b"GREETING=two" in output:
            break
        await asyncio.sleep(0.1)
    assert b"GREETING=two" in output
    status = await functions.wait_available(unique_name, 1)
    assert status["envVars"] == {"GREETING": "two"}


async def test_bad_input_is_rejected(functions: Functions, unique_name: str) -> None:
    url = functions.provider.url
    http = functions.http
    cases: list[tuple[str, str, bytes, int, str]] = [
        ("POST", "/system/functions", b"{not json", 400, "not valid JSON"),
        ("POST", "/system/functions", b"", 400, "empty"),
        ("POST", "/system/functions", b'{"service": "Bad_Name", "envProcess": "cat"}', 400,
         "service"),
        ("POST", "/system/functions", b'{"envProcess": "cat"}', 400, "service"),
        ("POST", "/system/functions", b'{"service": "x", "envProcess": "cat", "envVars": 3}',
         400, "envVars"),
        ("POST", "/system/functions",
         b'{"service": "x", "envProcess": "cat", "envVars": {"mode": "turbo"}}', 400, "mode"),
        ("POST", "/system/functions",
         b'{"service": "x", "envProcess": "cat", "limits": {"memory": "lots"}}', 400,
         "limits.memory"),
        ("POST", "/system/functions",
         b'{"service": "x", "envProcess": "cat", "labels": {"com.openfaas.scale.min": "x"}}',
         400, "com.openfaas.scale.min"),
        ("PUT", "/system/functions", b'{"service": "' + unique_name.encode() +
         b'", "envProcess": "cat"}', 404, "not found"),
        ("DELETE", "/system/functions", b'{"functionName": "' + unique_name.encode() + b'"}',
         404, "not found"),
        ("DELETE", "/system/functions", b"[1, 2]", 400, "functionName"),
        ("GET", f"/system/function/{unique_name}", b"", 404, "not found"),
        ("GET", "/system/function/Not_Valid", b"", 400, "name"),
        ("POST", f"/system/scale-function/{unique_name}", b'{"replicas": 2}', 404, "not found"),
        ("POST", f"/system/scale-function/{unique_name}", b'{"replicas": -1}', 400, "replicas"),
        ("POST", f"/system/scale-function/{unique_name}", b"nope", 400, "JSON"),
        ("GET", "/system/functions?namespace=Bad.NS", b"", 400, "namespace"),
        ("POST", "/function/" + unique_name, b"", 404, "not found"),
    ]  # fmt: skip
    for method, path, body, status, fragment in cases:
        # Bodies are JSON whatever the Content-Type: send none at all.
        async with http.request(method, url + path, data=body or None) as response:
            text = await response.text()
            assert response.status == status, (method, path, response.status, text)
            assert fragment in text, (method, path, text)


async def test_unknown_image_names_the_image_and_how_to_build_it(
    functions: Functions, unique_name: str
) -> None:
    text = await functions.deploy(
        {"service": unique_name, "image": f"{unique_name}:0.1"}, expect=400
    )
    assert f"{unique_name}:0.1" in text
    assert "faasbus build -f stack.yml" in text


async def test_missing_secret_is_refused(functions: Functions, unique_name: str) -> None:
    text = await functions.deploy(
        {"service": unique_name, "envProcess": "cat", "secrets": ["no-such-secret"]}, expect=400
    )
    assert "unable to find secret: no-such-secret" in text


async def test_info_namespaces_and_health(
    http: aiohttp.ClientSession, provider: ProviderProcess, unique_name: str
) -> None:
    async with http.get(f"{provider.url}/system/info") as response:
        info = await response.json()
    assert info["provider"]["provider"] == "faasbus"
    assert info["provider"]["orchestration"] == "process"
    assert info["provider"]["version"]["release"]
    assert info["version"]["release"]
    assert "commit_message" in info["version"]
    assert info["arch"]

    async with http.get(f"{provider.url}/healthz") as response:
        assert response.status == 200

    async with http.get(f"{provider.url}/system/namespaces") as response:
        assert "openfaas-fn" in await response.json()
    body = {"name": unique_name, "labels": {"team": "a"}}
    async with http.post(f"{provider.url}/system/namespace/", json=body) as response:
        assert response.status == 202
    async with http.post(f"{provider.url}/system/namespace/", json=body) as response:
        assert response.status == 409
    async with http.get(f"{provider.url}/system/namespaces") as response:
        assert unique_name in await response.json()
    async with http.get(f"{provider.url}/system/namespace/{unique_name}") as response:
        assert (await response.json())["labels"] == {"team": "a"}
    async with http.put(
        f"{provider.url}/system/namespace/{unique_name}", json={"labels": {"team": "b"}}
    ) as response:
        assert response.status == 202
    async with http.get(f"{provider.url}/system/namespace/{unique_name}") as response:
        assert (await response.json())["labels"] == {"team": "b"}
    async with http.delete(f"{provider.url}/system/namespace/{unique_name}") as response:
        assert response.status == 202
    async with http.delete(f"{provider.url}/system/namespace/{unique_name}") as response:
        assert response.status == 404
    async with http.delete(f"{provider.url}/system/namespace/openfaas-fn") as response:
        assert response.status == 409


async def test_functions_live_in_namespaces(functions: Functions, unique_name: str) -> None:
    namespace = f"ns-{unique_name}"
    await functions.deploy({"service": unique_name, "envProcess": "cat", "namespace": namespace})
    await functions.wait_available(unique_name, 1, namespace=namespace)
    url = functions.provider.url
    async with functions.http.get(f"{url}/system/functions?namespace={namespace}") as response:
        assert [f["name"] for f in await response.json()] == [unique_name]
    async with functions.http.get(f"{url}/system/functions") as response:
        assert unique_name not in [f["name"] for f in await response.json()]
    async with functions.http.get(f"{url}/system/namespaces") as response:
        assert namespace in await response.json()
    status, body = await functions.invoke(f"{unique_name}.{namespace}", b"ns")
    assert (status, body) == (200, b"ns")
