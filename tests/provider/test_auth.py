"""Basic auth on /system/* (REFERENCE.md sections 1, 10); function routes and /healthz stay open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.provider.helpers import basic


async def test_basic_auth(provider_factory: Any, tmp_path: Path) -> None:
    secrets = tmp_path / "auth"
    secrets.mkdir()
    (secrets / "basic-auth-user").write_text("admin\n")
    (secrets / "basic-auth-password").write_text("pa55word\n")
    provider = provider_factory(
        tmp_path / "state", basic_auth="true", secret_mount_path=str(secrets)
    )
    async with aiohttp.ClientSession() as http:
        for headers in (
            {},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer abc"},
            {"Authorization": basic("admin", "wrong")},
            {"Authorization": basic("wrong", "pa55word")},
            {"Authorization": "Basic !!!notbase64"},
        ):
            async with http.get(f"{provider.url}/system/functions", headers=headers) as response:
                assert response.status == 401, headers
                assert response.headers["WWW-Authenticate"] == 'Basic realm="Restricted"'
        good = {"Authorization": basic("admin", "pa55word")}
        async with http.get(f"{provider.url}/system/functions", headers=good) as response:
            assert response.status == 200
        async with http.get(f"{provider.url}/system/info", headers=good) as response:
            assert response.status == 200
        async with http.get(f"{provider.url}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{provider.url}/function/nothing-here") as response:
            assert response.status == 404  # open route: not 401


async def test_basic_auth_without_credentials_fails_at_start(tmp_path: Path) -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    result = subprocess.run(
        [sys.executable, "-m", "faasbus.provider"],
        env={"basic_auth": "true", "secret_mount_path": str(tmp_path / "none"), "port": "0",
             "FAASBUS_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "secret_mount_path" in result.stderr
    assert "basic-auth-user" in result.stderr
