"""Pure pieces of the provider: settings, scaling rule, quantities, log queries, bundle names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from faasbus.bus import SettingsError
from faasbus.provider import BundleError, ProviderSettings, build_bundle, bundle_dir
from faasbus.provider.bundles import normalize_image
from faasbus.provider.limits import CgroupLimiter, Limits, parse_cpu, parse_memory
from faasbus.provider.logquery import LogQuery, LogQueryError
from faasbus.provider.policy import ScaleBounds
from faasbus.provider.types import FunctionDeployment, FunctionStatus, ResourceSpec, WireError


def test_settings_defaults_and_errors(tmp_path: Path) -> None:
    settings = ProviderSettings.from_env({"HOME": str(tmp_path)})
    assert settings.port == 8081
    assert settings.listen_host == "127.0.0.1"
    assert settings.state_dir == tmp_path / ".local" / "share" / "faasbus"
    assert settings.auth_dir == settings.state_dir / "secrets"
    assert settings.endpoint_refresh_s == pytest.approx(settings.bus.endpoint_ttl_s / 3)
    custom = ProviderSettings.from_env(
        {"port": "0", "FAASBUS_STATE_DIR": str(tmp_path / "s"), "basic_auth": "true",
         "secret_mount_path": "/run/auth", "FAASBUS_REPLICA_STOP_GRACE": "1m30s"}
    )  # fmt: skip
    assert custom.port == 0
    assert custom.basic_auth is True
    assert custom.auth_dir == Path("/run/auth")
    assert custom.stop_grace_s == 90
    for variable, value in (("port", "http"), ("port", "70000"), ("basic_auth", "maybe"),
                            ("FAASBUS_HEALTH_INTERVAL", "soon")):  # fmt: skip
        with pytest.raises(SettingsError) as caught:
            ProviderSettings.from_env({variable: value})
        assert variable in str(caught.value)


def test_scale_bounds() -> None:
    plain = ScaleBounds.from_labels({})
    assert (plain.minimum, plain.maximum, plain.zero_allowed) == (1, 20, False)
    assert plain.clamp(0) == 1
    assert plain.clamp(50) == 20
    assert plain.initial == 1
    zero = ScaleBounds.from_labels({"com.openfaas.scale.zero": "true"})
    assert zero.clamp(0) == 0
    assert zero.wake == 1
    floor = ScaleBounds.from_labels({"com.openfaas.scale.min": "0"})
    assert floor.clamp(0) == 0
    ranged = ScaleBounds.from_labels({"com.openfaas.scale.min": "2", "com.openfaas.scale.max": "4"})
    assert [ranged.clamp(n) for n in (0, 1, 3, 9)] == [2, 2, 3, 4]
    assert ranged.wake == 2
    for labels in ({"com.openfaas.scale.min": "two"}, {"com.openfaas.scale.max": "-1"},
                   {"com.openfaas.scale.min": "5", "com.openfaas.scale.max": "2"}):  # fmt: skip
        with pytest.raises(WireError):
            ScaleBounds.from_labels(labels)


def test_quantities() -> None:
    assert parse_memory("128Mi") == 128 * 1024 * 1024
    assert parse_memory("1G") == 10**9
    assert parse_memory("2097152") == 2 * 1024 * 1024
    assert parse_memory("") is None
    assert parse_cpu("100m") == pytest.approx(0.1)
    assert parse_cpu("2") == 2
    assert parse_cpu("") is None
    for bad in ("lots", "12Xi", "10"):
        with pytest.raises(WireError):
            parse_memory(bad)
    for bad in ("fast", "100Mi", "0"):
        with pytest.raises(WireError):
            parse_cpu(bad)
    limits = Limits.from_spec(ResourceSpec(memory="64Mi", cpu="250m"))
    assert limits == Limits(64 * 1024 * 1024, 0.25)
    assert CgroupLimiter(None).mechanism == "rlimit"


def test_log_query_parsing() -> None:
    query = LogQuery.from_query({"name": "fn", "tail": "-1", "follow": "true"})
    assert (query.namespace, query.tail, query.follow, query.since) == (
        "openfaas-fn",
        None,
        True,
        None,
    )
    assert query.subject == "faas.logs.openfaas-fn.fn.*"
    since = LogQuery.from_query({"name": "fn", "since": "2024-05-01T10:00:00+01:00"}).since
    assert since == datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert LogQuery.from_query({"name": "fn", "tail": "3", "instance": "fn-abc123"}).subject == (
        "faas.logs.openfaas-fn.fn.fn-abc123"
    )
    for bad in ({"tail": "x"}, {"since": "noon"}, {"since": "2024-05-01T10:00:00"},
                {"follow": "perhaps"}):  # fmt: skip
        with pytest.raises(LogQueryError):
            LogQuery.from_query({"name": "fn", **bad})
    for bad in ({}, {"name": "Fn"}, {"name": "fn", "instance": "a.b"}):
        with pytest.raises(WireError):
            LogQuery.from_query(bad)


def test_bundle_names_and_build_errors(tmp_path: Path) -> None:
    assert normalize_image("fn") == "fn:latest"
    assert normalize_image("registry:5000/team/fn") == "registry:5000/team/fn:latest"
    assert normalize_image("team/fn:1.2") == "team/fn:1.2"
    assert bundle_dir(tmp_path, "fn") == bundle_dir(tmp_path, "fn:latest")
    assert bundle_dir(tmp_path, "a/b:c") != bundle_dir(tmp_path, "a-b:c")
    assert "/" not in bundle_dir(tmp_path, "a/b:c").name
    with pytest.raises(BundleError, match="lang"):
        build_bundle("fn", "fn", "node18", tmp_path, tmp_path / "state")
    with pytest.raises(BundleError, match=r"handler\.py"):
        build_bundle("fn", "fn", "python3", tmp_path / "nothing", tmp_path / "state")


def test_function_status_round_trip() -> None:
    deployment = FunctionDeployment.from_wire({"service": "fn", "envProcess": "cat"})
    status = FunctionStatus(deployment, 2, 1, 0, "2024-01-01T00:00:00Z", 5.0, 1024.0, 3, "boom")
    wire = status.to_wire()
    assert wire["restarts"] == 3
    assert wire["lastError"] == "boom"
    assert FunctionStatus.from_wire(wire) == status
    assert "restarts" not in FunctionStatus(deployment).to_wire()
