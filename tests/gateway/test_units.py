"""Settings, sizes, the info shape, credential checks: the small pure pieces of the gateway."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from faasbus.bus import SettingsError
from faasbus.gateway import BasicAuth, Credentials, GatewaySettings, complete_info, parse_size
from faasbus.gateway.proxy import new_call_id


def test_defaults_match_openfaas_and_the_brief() -> None:
    settings = GatewaySettings.from_env({})
    assert settings.port == 8080
    assert settings.listen_host == "127.0.0.1"
    assert settings.functions_provider_url == "http://127.0.0.1:8081"
    assert settings.upstream_timeout_s == 60
    assert settings.max_body_size == 32 * 1024 * 1024
    assert settings.scale_from_zero is True
    assert settings.scale_from_zero_wait_s == 30
    assert settings.basic_auth is False
    assert settings.function_wait_s == 30


def test_settings_read_openfaas_names() -> None:
    settings = GatewaySettings.from_env({
        "port": "0",
        "FAASBUS_LISTEN_HOST": "0.0.0.0",
        "functions_provider_url": "http://provider:8081/",
        "upstream_timeout": "1m30s",
        "read_timeout": "5",
        "write_timeout": "500ms",
        "max_body_size": "10Mi",
        "scale_from_zero": "false",
        "FAASBUS_SCALE_FROM_ZERO_WAIT": "2s",
        "basic_auth": "true",
        "secret_mount_path": "/tmp/secrets",
        "FAASBUS_NATS_URL": "nats://n:4222",
    })  # fmt: skip
    assert settings.port == 0
    assert settings.listen_host == "0.0.0.0"
    assert settings.functions_provider_url == "http://provider:8081"
    assert settings.upstream_timeout_s == 90
    assert settings.read_timeout_s == 5
    assert settings.write_timeout_s == 0.5
    assert settings.max_body_size == 10 * 1024 * 1024
    assert settings.scale_from_zero is False
    assert settings.function_wait_s == 0  # fail at once: nobody would start a replica
    assert settings.basic_auth is True
    assert settings.secret_mount_path == Path("/tmp/secrets")
    assert settings.bus.nats_url == "nats://n:4222"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("port", "http"),
        ("port", "65536"),
        ("upstream_timeout", "0"),
        ("read_timeout", "forever"),
        ("max_body_size", "0"),
        ("max_body_size", "12 parsecs"),
        ("basic_auth", "maybe"),
        ("functions_provider_url", "provider:8081"),
    ],
)
def test_bad_values_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        GatewaySettings.from_env({variable: value})
    assert caught.value.name == variable


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1048576), ("512k", 512_000), ("32Mi", 32 * 1024**2), ("1GB", 10**9),
     ("2 gib", 2 * 1024**3)],
)  # fmt: skip
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_info_from_a_faas_provider_answer_is_wrapped() -> None:
    info = complete_info(
        {
            "provider": "faasbus",
            "orchestration": "process",
            "version": {"sha": "a", "release": "1"},
        },
        "0.1.0",
    )
    assert info["provider"] == {
        "provider": "faasbus",
        "orchestration": "process",
        "version": {"sha": "a", "release": "1"},
    }
    assert info["version"]["release"] == "0.1.0"
    assert isinstance(info["arch"], str)


def test_credentials_are_checked_exactly(tmp_path: Path) -> None:
    (tmp_path / "basic-auth-user").write_text("admin\n")
    (tmp_path / "basic-auth-password").write_text("pw:with:colons\n")
    credentials = Credentials.load(tmp_path)
    auth = BasicAuth(credentials)
    assert auth.allows(credentials.header())
    assert auth.allows("basic " + base64.b64encode(b"admin:pw:with:colons").decode())
    assert not auth.allows("Basic " + base64.b64encode(b"admin:pw:with").decode())
    assert not auth.allows("Basic " + base64.b64encode(b"Admin:pw:with:colons").decode())
    assert not auth.allows("Bearer ")
    assert not auth.allows("")
    assert not auth.allows(None)
    assert BasicAuth(None).allows(None)  # auth off


def test_generated_call_ids_are_random_version_4_uuids() -> None:
    ids = {new_call_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in list(ids)[:50]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
