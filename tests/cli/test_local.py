"""Local commands and launcher parts: `new`, `build`, credentials, the service list."""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from faasbus.cli import ServiceContext, load_stack
from faasbus.cli.credentials import ensure_credentials
from faasbus.cli.procscan import find_processes, kill_processes
from faasbus.cli.services import runnable_specs, service_specs
from faasbus.cli.settings import ClientSettings, default_state_dir, read_credentials

RunCli = Callable[..., Result]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


# ---------------------------------------------------------------- new


@pytest.mark.parametrize("lang", ["python3", "python3-http"])
def test_new_scaffolds_handler_and_creates_stack(run_cli: RunCli, in_tmp: Path, lang: str) -> None:
    result = run_cli("new", "my-fn", "--lang", lang)
    assert result.exit_code == 0, result.output
    handler = in_tmp / "my-fn" / "handler.py"
    assert handler.is_file()
    assert "def handle(" in handler.read_text()
    assert (in_tmp / "my-fn" / "requirements.txt").is_file()
    assert not (in_tmp / "my-fn" / "__init__.py").exists()
    fn = load_stack(in_tmp / "stack.yml", {}).functions["my-fn"]
    assert fn.lang == lang
    assert fn.handler == (in_tmp / "my-fn").resolve()
    assert fn.image == "my-fn:latest"


def test_new_appends_and_keeps_comments(run_cli: RunCli, in_tmp: Path) -> None:
    stack = in_tmp / "stack.yml"
    stack.write_text(
        "# my functions\nversion: 1.0\nfunctions:\n  wc:\n    fprocess: wc  # any binary\n"
    )
    result = run_cli("new", "second", "--lang", "python3", "-f", str(stack))
    assert result.exit_code == 0, result.output
    text = stack.read_text()
    assert text.startswith("# my functions\n")
    assert "# any binary" in text
    assert list(load_stack(stack, {}).functions) == ["wc", "second"]


def test_new_rewrites_when_functions_is_not_last(run_cli: RunCli, in_tmp: Path) -> None:
    stack = in_tmp / "stack.yml"
    stack.write_text("functions:\n  wc:\n    fprocess: wc\nprovider:\n  name: openfaas\n")
    result = run_cli("new", "later", "--lang", "python3-http", "-f", str(stack))
    assert result.exit_code == 0, result.output
    assert "comments were not kept" in result.output
    loaded = load_stack(stack, {})
    assert list(loaded.functions) == ["wc", "later"]


def test_new_refuses_to_overwrite(run_cli: RunCli, in_tmp: Path) -> None:
    assert run_cli("new", "dup", "--lang", "python3").exit_code == 0
    result = run_cli("new", "dup", "--lang", "python3")
    assert result.exit_code == 1
    assert "already has a function named 'dup'" in result.stderr
    (in_tmp / "taken").mkdir()
    result = run_cli("new", "taken", "--lang", "python3")
    assert result.exit_code == 1
    assert "already exists" in result.stderr
    result = run_cli("new", "Bad_Name", "--lang", "python3")
    assert result.exit_code == 1
    assert "not a valid function name" in result.stderr
    assert run_cli("new", "x", "--lang", "cobol").exit_code == 2


# ---------------------------------------------------------------- build


def test_build_makes_a_bundle_and_skips_host_commands(
    run_cli: RunCli, in_tmp: Path, state_dir: Path
) -> None:
    assert run_cli("new", "built", "--lang", "python3-http").exit_code == 0
    with (in_tmp / "stack.yml").open("a") as stack:
        stack.write("  plain:\n    fprocess: cat\n")
    result = run_cli("build")
    assert result.exit_code == 0, result.output
    assert "Skipped plain: host command" in result.output
    bundles = list((state_dir / "bundles").iterdir())
    assert len(bundles) == 1
    record = json.loads((bundles[0] / "bundle.json").read_text())
    assert record["image"] == "built:latest"
    assert record["lang"] == "python3-http"


def test_build_refuses_an_unknown_lang(run_cli: RunCli, in_tmp: Path) -> None:
    (in_tmp / "stack.yml").write_text("functions:\n  go-fn:\n    lang: go\n    handler: ./go-fn\n")
    result = run_cli("build")
    assert result.exit_code == 1
    assert "lang 'go' cannot be built" in result.stderr


# ---------------------------------------------------------------- settings and credentials


def test_state_dir_defaults(tmp_path: Path) -> None:
    assert default_state_dir({"FAASBUS_STATE_DIR": str(tmp_path)}) == tmp_path
    assert default_state_dir({"XDG_DATA_HOME": str(tmp_path), "HOME": "/nowhere"}) == (
        tmp_path / "faasbus"
    )
    settings = ClientSettings.resolve(
        gateway=None, user=None, password=None, state_dir=tmp_path, environ={}
    )
    assert settings.gateway == "http://127.0.0.1:8080"
    assert settings.user is None
    assert settings.with_stack_gateway("http://other:8080/").gateway == "http://other:8080"


def test_credentials_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = ensure_credentials(tmp_path)
    assert first.created
    assert first.user == "admin"
    password = first.password_path.read_text().strip()
    assert len(password) >= 24
    for path in (first.user_path, first.password_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.user_path.parent.stat().st_mode) == 0o700
    second = ensure_credentials(tmp_path)
    assert not second.created
    assert second.password_path.read_text().strip() == password
    assert read_credentials(tmp_path) == ("admin", password)


# ---------------------------------------------------------------- services of `faasbus up`


def _context(tmp_path: Path, **env: str) -> ServiceContext:
    return ServiceContext(
        state_dir=tmp_path,
        nats_url="nats://127.0.0.1:4222",
        gateway_port=8080,
        provider_port=18081,
        token="tok",
        base_env={"PATH": "/usr/bin", "port": "9999", **env},
    )


def test_service_environment_is_explicit(tmp_path: Path) -> None:
    specs = {spec.name: spec for spec in service_specs(_context(tmp_path))}
    provider, gateway = specs["provider"], specs["gateway"]
    assert provider.required
    assert gateway.required
    for spec in (provider, gateway):
        assert spec.env["FAASBUS_NATS_URL"] == "nats://127.0.0.1:4222"
        assert spec.env["FAASBUS_STATE_DIR"] == str(tmp_path)
        assert spec.env["basic_auth"] == "true"
        assert spec.env["secret_mount_path"] == str(tmp_path / "secrets")
        assert spec.env["FAASBUS_UP_TOKEN"] == "tok"
        assert spec.env["PATH"] == "/usr/bin"
    assert provider.env["port"] == "18081"
    assert gateway.env["port"] == "8080"
    assert gateway.env["functions_provider_url"] == "http://127.0.0.1:18081/"
    assert gateway.health_url() == "http://127.0.0.1:8080/healthz"
    assert list(specs)[:2] == ["provider", "gateway"]


def test_connectors_run_only_when_configured(tmp_path: Path) -> None:
    run, _missing = runnable_specs(_context(tmp_path))
    names = [spec.name for spec in run]
    assert "kafka" not in names
    assert "sqs" not in names
    specs = {spec.name: spec for spec in service_specs(_context(tmp_path, broker_hosts="k:9092"))}
    assert specs["kafka"].enabled({"broker_hosts": "k:9092"})
    assert not specs["sqs"].enabled({})


# ---------------------------------------------------------------- `faasbus up` refusals and sweep


def _up(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`faasbus up` in a subprocess (it configures logging and signals for its whole process)."""
    return subprocess.run(
        [sys.executable, "-m", "faasbus.cli", "up", "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_up_refuses_a_taken_port_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = _up(tmp_path / "state", "--port", str(port), "--no-deploy")
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines()[-1] == (
        f"faasbus: port {port} is taken: stop what uses it or pick another with --port"
    )
    assert "nats-server started" not in completed.stdout


def test_up_refuses_a_bad_stack_file_up_front(tmp_path: Path) -> None:
    stack = tmp_path / "stack.yml"
    stack.write_text("functions:\n  fn:\n    fprocess: cat\n    labels: [x]\n")
    completed = _up(tmp_path / "state", "-f", str(stack))
    assert completed.returncode == 1
    assert (
        completed.stderr.strip()
        == f"faasbus: {stack}: functions.fn.labels: must be a mapping of names to values"
    )


def test_sweep_finds_marked_processes_and_replicas_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sleepers = {
        "token": {"FAASBUS_UP_TOKEN": "tok-123"},
        "replica": {"FAASBUS_LOCK_FILE": str(state / "functions" / "fn" / "run" / "a.lock")},
        "shell": {"FAASBUS_STATE_DIR": str(state)},
        "other-token": {"FAASBUS_UP_TOKEN": "tok-999"},
    }
    started = {
        name: subprocess.Popen(["sleep", "60"], env={"PATH": "/usr/bin:/bin", **env})
        for name, env in sleepers.items()
    }
    try:
        found = set(find_processes("tok-123", state))
        assert started["token"].pid in found
        assert started["replica"].pid in found
        assert started["shell"].pid not in found
        assert started["other-token"].pid not in found
        assert set(kill_processes([started["token"].pid])) == {started["token"].pid}
        assert started["token"].wait(timeout=10) == -signal.SIGKILL
    finally:
        for process in started.values():
            process.kill()
            process.wait(timeout=10)


def test_workers_and_configured_connectors_are_started(tmp_path: Path) -> None:
    context = _context(
        tmp_path, FAASBUS_QUEUE_WORKERS="2", queue_url="http://127.0.0.1:9/1/q",
        FAASBUS_NATS_CONNECTOR="true",
    )  # fmt: skip
    run, missing = runnable_specs(context)
    names = [spec.name for spec in run]
    assert missing == []
    assert names[:2] == ["provider", "gateway"]
    assert names.count("queue-worker") + names.count("queue-worker-1") == 2
    assert {"cron", "sqs", "nats-connector"} <= set(names)
    assert "kafka" not in names  # broker_hosts not set
