"""Settings readers: durations, booleans and errors that name the variable."""

from __future__ import annotations

import pytest

from faasbus.bus import BusSettings, Env, SettingsError, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10", 10.0), ("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0),
     ("2.5", 2.5), ("1h2m3s", 3723.0), ("0", 0.0)],
)  # fmt: skip
def test_durations_in_openfaas_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "ten", "10x", "s10", "1m 30s", "-3", "10s5"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="FAASBUS_DEDUPE_WINDOW='soon'"):
        BusSettings.from_env({"FAASBUS_DEDUPE_WINDOW": "soon"})
    with pytest.raises(SettingsError, match="FAASBUS_STREAM_REPLICAS"):
        BusSettings.from_env({"FAASBUS_STREAM_REPLICAS": "0"})


def test_booleans_aliases_and_defaults() -> None:
    env = Env({"a": "Yes", "b": "0", "c": "maybe", "alias": "true", "blank": "  "})
    assert env.flag("a", default=False) is True
    assert env.flag("b", default=True) is False
    assert env.flag("missing", True, "alias") is True
    assert env.flag("blank", default=True) is True
    with pytest.raises(SettingsError, match="c='maybe'"):
        env.flag("c", default=False)


def test_bus_settings_read_from_mapping() -> None:
    settings = BusSettings.from_env(
        {"FAASBUS_NATS_URL": "nats://a:1, nats://b:2", "FAASBUS_CALLS_TTL": "1h"}
    )
    assert settings.servers == ["nats://a:1", "nats://b:2"]
    assert settings.calls_ttl_s == 3600.0
    assert settings.dedupe_window_s >= 600.0
