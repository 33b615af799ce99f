"""``/system/*`` forwarded to a provider, with the gateway's auth, counts and info on the way.

The provider here is a small real aiohttp app answering the faas-provider routes (helpers.py
``ProviderApp``): what matters is what the gateway passes on and back, and the real provider is
tested on its own (tests/provider).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from faasbus.bus import Endpoint, free_port
from faasbus.gateway import CredentialsError, GatewaySettings, create_app
from tests.gateway.helpers import Gateway, ProviderApp, ReplicaControl

MakeGateway = Callable[..., Awaitable[Gateway]]
StartReplica = Callable[..., Awaitable[tuple[ReplicaControl, Endpoint]]]

NO_CONTENT_TYPE = ("Content-Type",)


async def test_deploy_update_delete_pass_bodies_and_statuses(
    gateway: Gateway, provider: ProviderApp, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/system/functions"
    deploy = json.dumps({"service": "hello", "image": "hello:latest"}).encode()

    # faas-cli deploy: PUT first, POST when the function is unknown. No Content-Type at all.
    async with http.put(url, data=deploy, skip_auto_headers=NO_CONTENT_TYPE) as resp:
        assert resp.status == 404
    async with http.post(url, data=deploy, skip_auto_headers=NO_CONTENT_TYPE) as resp:
        assert resp.status == 202
    async with http.put(url, data=deploy, skip_auto_headers=NO_CONTENT_TYPE) as resp:
        assert resp.status == 202
    async with http.delete(url, data=b'{"functionName":"hello"}') as resp:
        assert resp.status == 202
    async with http.delete(url, data=b'{"functionName":"hello"}') as resp:
        assert resp.status == 404

    methods = [(s.method, s.body) for s in provider.seen]
    assert methods == [
        ("PUT", deploy),
        ("POST", deploy),
        ("PUT", deploy),
        ("DELETE", b'{"functionName":"hello"}'),
        ("DELETE", b'{"functionName":"hello"}'),
    ]
    assert "Content-Type" not in provider.seen[1].headers


async def test_other_system_routes_pass_through_with_query(
    gateway: Gateway, provider: ProviderApp, http: aiohttp.ClientSession
) -> None:
    body = b'{"serviceName":"hello","replicas":2}'
    url = f"{gateway.url}/system/scale-function/hello?namespace=openfaas-fn"
    async with http.post(url, data=body) as resp:
        assert resp.status == 202
        assert await resp.json() == {"path": "/system/scale-function/hello?namespace=openfaas-fn"}
    assert provider.seen[-1].body == body
    assert provider.seen[-1].headers["X-Forwarded-For"] == "127.0.0.1"


async def test_function_lists_carry_the_gateways_invocation_counts(
    gateway: Gateway,
    provider: ProviderApp,
    start_replica: StartReplica,
    http: aiohttp.ClientSession,
    unique_name: str,
) -> None:
    provider.add(unique_name)
    provider.add("idle")
    await start_replica(unique_name)
    await gateway.wait_ready(unique_name)
    for _ in range(3):
        async with http.get(f"{gateway.url}/function/{unique_name}") as resp:
            assert resp.status == 200

    async with http.get(f"{gateway.url}/system/functions") as resp:
        assert resp.status == 200
        listed = {item["name"]: item for item in await resp.json()}
    assert listed[unique_name]["invocationCount"] == 3
    assert listed["idle"]["invocationCount"] == 0
    assert listed[unique_name]["image"] == f"{unique_name}:latest"  # the rest untouched

    async with http.get(f"{gateway.url}/system/function/{unique_name}?usage=1") as resp:
        assert resp.status == 200
        assert (await resp.json())["invocationCount"] == 3
    async with http.get(f"{gateway.url}/system/function/missing") as resp:
        assert resp.status == 404


@pytest.mark.parametrize(
    "answer",
    [
        {"provider": "p", "orchestration": "o", "version": {"sha": "s", "release": "r"}},
        {"provider": {"provider": "p", "orchestration": "o", "version": None}, "arch": "x"},
        {},
        None,
    ],
    ids=["faas-provider shape", "gateway shape", "empty", "provider 404"],
)
async def test_info_always_has_the_objects_faas_cli_reads(
    gateway: Gateway, provider: ProviderApp, http: aiohttp.ClientSession, answer: object
) -> None:
    provider.info = answer
    async with http.get(f"{gateway.url}/system/info") as resp:
        assert resp.status == 200
        info = await resp.json()
    assert isinstance(info["provider"], dict)
    assert isinstance(info["provider"]["provider"], str)
    assert isinstance(info["provider"]["version"], dict)
    assert isinstance(info["version"], dict)
    assert info["version"]["release"]
    assert info["arch"]
    if isinstance(answer, dict) and answer.get("provider") == "p":
        assert info["provider"]["version"] == {"sha": "s", "release": "r"}


async def test_logs_flow_line_by_line_and_stop_when_the_client_leaves(
    gateway: Gateway, provider: ProviderApp, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/system/logs?name=hello&tail=-1&follow=true"
    async with http.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/x-ndjson"
        texts = []
        for _ in range(3):
            line = await asyncio.wait_for(resp.content.readline(), timeout=10)
            texts.append(json.loads(line)["text"])
        assert texts == ["line 0", "line 1", "line 2"]
        assert provider.log_lines_sent < 1000  # still following: lines arrive as written
    await asyncio.wait_for(provider.log_client_left.wait(), timeout=10)


async def test_redirects_are_passed_back_not_followed(
    gateway: Gateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{gateway.url}/system/moved", allow_redirects=False) as resp:
        assert resp.status == 302
        assert resp.headers["Location"] == "/system/functions"


async def test_provider_down_is_502_from_the_gateway(
    make_gateway: MakeGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await make_gateway(functions_provider_url=f"http://127.0.0.1:{free_port()}")
    async with http.get(f"{gateway.url}/system/functions") as resp:
        assert resp.status == 502
        assert resp.headers["X-OpenFaaS-Internal"] == "gateway"


# ---------------------------------------------------------------- basic auth


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
async def secured(make_gateway: MakeGateway, tmp_path: Path) -> Gateway:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "basic-auth-user").write_text("admin\n")
    (secrets / "basic-auth-password").write_text("s3cret-pass\n")
    return await make_gateway(basic_auth=True, secret_mount_path=secrets)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        _basic("admin", "wrong"),
        _basic("root", "s3cret-pass"),
        _basic("admin", ""),
        "Bearer",
        "Bearer ",
        "Bearer some-token",
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ],
    ids=["missing", "wrong password", "wrong user", "empty password", "bearer", "empty bearer",
         "bearer token", "bad base64", "no colon"],
)  # fmt: skip
async def test_system_and_ui_refuse_bad_credentials(
    secured: Gateway, provider: ProviderApp, http: aiohttp.ClientSession, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (
        ("GET", "/system/functions"),
        ("POST", "/system/functions"),
        ("GET", "/system/info"),
        ("GET", "/system/logs?name=x"),
        ("GET", "/ui/"),
    ):
        async with http.request(method, f"{secured.url}{path}", headers=headers) as resp:
            assert resp.status == 401, (method, path)
            assert resp.headers["WWW-Authenticate"] == 'Basic realm="Restricted"'
    assert provider.seen == []  # nothing reached the provider


async def test_good_credentials_pass_and_open_routes_stay_open(
    secured: Gateway,
    provider: ProviderApp,
    start_replica: StartReplica,
    http: aiohttp.ClientSession,
    unique_name: str,
) -> None:
    good = {"Authorization": _basic("admin", "s3cret-pass")}
    async with http.get(f"{secured.url}/system/functions", headers=good) as resp:
        assert resp.status == 200
    async with http.get(f"{secured.url}/ui/", headers=good) as resp:
        assert resp.status == 200
    assert provider.seen[0].headers["Authorization"] == good["Authorization"]

    # Functions, health and metrics need no credentials (as in OpenFaaS).
    await start_replica(unique_name)
    await secured.wait_ready(unique_name)
    async with http.get(f"{secured.url}/function/{unique_name}") as resp:
        assert resp.status == 200
    for path in ("/healthz", "/metrics"):
        async with http.get(f"{secured.url}{path}") as resp:
            assert resp.status == 200, path


def test_basic_auth_without_credential_files_fails_at_start(tmp_path: Path) -> None:
    settings = GatewaySettings(basic_auth=True, secret_mount_path=tmp_path)
    with pytest.raises(CredentialsError, match="basic-auth-user"):
        create_app(settings)
