"""Settings parsing and the CGI header mapping, as pure functions."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from faasbus.watchdog import ConfigError, Mode, Template, WatchdogConfig, parse_duration
from faasbus.watchdog.cgi import canonical_header, cgi_environment


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10", 10.0),
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("0", 0.0),
        ("250us", 0.00025),
        ("2m", 120.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "-1", "10x", "s10", "1m30", "nan", "inf"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_classic_defaults() -> None:
    config = WatchdogConfig.from_env({"fprocess": "cat -n"}, pid=42)
    assert config.mode is Mode.CLASSIC
    assert config.fprocess == ("cat", "-n")
    assert config.port == 8080
    assert config.listen_host == "127.0.0.1"
    assert config.read_timeout_s == config.write_timeout_s == 30.0
    assert config.exec_timeout_s == 0.0
    assert config.healthcheck_interval_s == config.write_timeout_s
    assert config.max_inflight == 0
    assert config.cgi_headers is True
    assert config.combine_output is True
    assert config.prefix_logs is True
    assert config.marshal_request is False
    assert config.suppress_lock is False
    assert config.buffer_http is False
    assert config.content_type == ""
    assert config.lock_file.name == ".lock-42"


def test_of_watchdog_modes_default_exec_timeout_30s() -> None:
    for mode in ("streaming", "serializing"):
        config = WatchdogConfig.from_env({"fprocess": "cat", "mode": mode})
        assert config.exec_timeout_s == 30.0


def test_aliases_and_values() -> None:
    config = WatchdogConfig.from_env(
        {
            "function_process": "python3 app.py",
            "mode": "HTTP",
            "http_upstream_url": "http://127.0.0.1:5000/",
            "write_timeout": "1m30s",
            "exec_timeout": "500ms",
            "http_buffer_req_body": "yes",
            "cgi_headers": "0",
            "port": "0",
            "FAASBUS_LOCK_FILE": "/tmp/x.lock",
            "ready_path": "ready",
        }
    )
    assert config.mode is Mode.HTTP
    assert config.fprocess == ("python3", "app.py")
    assert config.upstream_url == "http://127.0.0.1:5000"
    assert config.write_timeout_s == 90.0
    assert config.healthcheck_interval_s == 90.0
    assert config.exec_timeout_s == 0.5
    assert config.buffer_http is True
    assert config.cgi_headers is False
    assert config.port == 0
    assert config.lock_file == Path("/tmp/x.lock")
    assert config.ready_path == "/ready"


def test_python_mode_from_handler(tmp_path: Path) -> None:
    handler = tmp_path / "handler.py"
    handler.write_text("def main(req):\n    return req\n")
    config = WatchdogConfig.from_env(
        {"FAASBUS_HANDLER": f"{handler}:main", "FAASBUS_TEMPLATE": "python3"}
    )
    assert config.mode is Mode.PYTHON
    assert config.handler_path == handler.resolve()
    assert config.handler_function == "main"
    assert config.template is Template.PYTHON3
    assert config.exec_timeout_s == 30.0


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"fprocess": "cat", "port": "80000"}, "port"),
        ({"fprocess": "cat", "write_timeout": "0"}, "write_timeout"),
        ({"fprocess": "cat", "read_timeout": "-3s"}, "read_timeout"),
        ({"fprocess": "cat", "healthcheck_interval": "x"}, "healthcheck_interval"),
        ({"fprocess": "cat", "prefix_logs": "sure"}, "prefix_logs"),
        ({"mode": "http", "fprocess": "x", "upstream_url": "ftp://x"}, "upstream_url"),
        ({"mode": "python"}, "FAASBUS_HANDLER"),
        ({"FAASBUS_HANDLER": "/nonexistent/handler.py"}, "FAASBUS_HANDLER"),
        ({"fprocess": "cat", "FAASBUS_TEMPLATE": "ruby"}, "FAASBUS_TEMPLATE"),
        ({"mode": "classic"}, "fprocess"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WatchdogConfig.from_env(env)
    assert caught.value.variable == variable
    assert variable in str(caught.value)


def test_static_needs_no_command() -> None:
    config = WatchdogConfig.from_env({"mode": "static", "static_path": "/srv"})
    assert config.mode is Mode.STATIC
    assert config.static_path == Path("/srv")


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("x-call-id", "X-Call-Id"),
        ("CONTENT-TYPE", "Content-Type"),
        ("x", "X"),
        ("X-Forwarded-For", "X-Forwarded-For"),
        ("weird header", "weird header"),
    ],
)
def test_canonical_header(raw: str, canonical: str) -> None:
    assert canonical_header(raw) == canonical


def test_cgi_environment_without_body() -> None:
    headers = CIMultiDictProxy(CIMultiDict([("Host", "h:1"), ("accept", "*/*")]))
    env = cgi_environment(headers, method="GET", path="/", raw_query="", host="h:1")
    assert env == {
        "Http_Accept": "*/*",
        "Http_Method": "GET",
        "Http_Path": "/",
        "Http_Host": "h:1",
        "Http_Content_Length": "0",
    }
