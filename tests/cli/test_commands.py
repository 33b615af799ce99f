"""Gateway commands on the wire: requests as faas-cli sends them, and one-line errors."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from faasbus.bus import free_port

from .conftest import FakeGateway, Recorded, Reply

RunCli = Callable[..., Result]


def write_credentials(state_dir: Path, user: str = "admin", password: str = "s3cret") -> None:  # noqa: S107
    secrets_dir = state_dir / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    (secrets_dir / "basic-auth-user").write_text(user + "\n")
    (secrets_dir / "basic-auth-password").write_text(password + "\n")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def one_line_error(result: Result) -> str:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("faasbus: ")
    assert "Traceback" not in result.output
    return lines[0]


def host_stack(tmp_path: Path, *names: str) -> Path:
    body = "functions:\n" + "".join(f"  {n}:\n    fprocess: cat\n" for n in names)
    path = tmp_path / "stack.yml"
    path.write_text(body)
    return path


# ---------------------------------------------------------------- errors


def test_unreachable_gateway_is_one_line_and_non_zero(run_cli: RunCli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (
        ["list"],
        ["describe", "fn"],
        ["scale", "fn", "--replicas", "1"],
        ["secret", "list"],
        ["logs", "fn"],
    ):
        result = run_cli(*args, env={"OPENFAAS_URL": url})
        line = one_line_error(result)
        assert f"cannot reach the gateway at {url}" in line


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    completed = subprocess.run(
        [sys.executable, "-m", "faasbus.cli", "list", "--gateway", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={"FAASBUS_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr.count("\n") == 1
    assert completed.stderr.startswith(f"faasbus: cannot reach the gateway at {url}")


def test_bad_stack_file_names_the_field(run_cli: RunCli, tmp_path: Path) -> None:
    stack = tmp_path / "stack.yml"
    stack.write_text("functions:\n  fn:\n    fprocess: cat\n    secrets: {a: b}\n")
    line = one_line_error(run_cli("deploy", "-f", str(stack)))
    assert "functions.fn.secrets" in line


def test_401_says_how_to_give_credentials(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    fake_gateway.on("GET", "/system/functions", Reply(401, "Unauthorized\n"))
    line = one_line_error(run_cli("list", "--gateway", fake_gateway.url))
    assert "401" in line
    assert "--user" in line


def test_404_names_the_function(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    line = one_line_error(run_cli("describe", "ghost", "--gateway", fake_gateway.url))
    assert "function 'ghost' not found" in line
    line = one_line_error(run_cli("remove", "ghost", "--gateway", fake_gateway.url))
    assert "function 'ghost' not found" in line


def test_other_statuses_quote_the_gateway(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    fake_gateway.on("POST", "/system/scale-function/fn", Reply(500, "store down\nmore\n"))
    line = one_line_error(run_cli("scale", "fn", "--replicas", "2", "--gateway", fake_gateway.url))
    assert "500" in line
    assert "store down" in line


# ---------------------------------------------------------------- credentials and gateway


def test_credentials_come_from_the_state_dir(
    run_cli: RunCli, fake_gateway: FakeGateway, state_dir: Path
) -> None:
    write_credentials(state_dir, "admin", "from-file")
    fake_gateway.on("GET", "/system/functions", Reply(200, []))
    assert run_cli("list", env={"OPENFAAS_URL": fake_gateway.url}).exit_code == 0
    assert fake_gateway.requests[-1].headers["Authorization"] == basic("admin", "from-file")
    # The environment beats the files, and flags beat the environment.
    env = {"OPENFAAS_URL": fake_gateway.url, "FAASBUS_PASSWORD": "from-env"}
    assert run_cli("list", env=env).exit_code == 0
    assert fake_gateway.requests[-1].headers["Authorization"] == basic("admin", "from-env")
    assert run_cli("--password", "from-flag", "list", env=env).exit_code == 0
    assert fake_gateway.requests[-1].headers["Authorization"] == basic("admin", "from-flag")
    assert run_cli("list", "--user", "bob", "--password", "x", env=env).exit_code == 0
    assert fake_gateway.requests[-1].headers["Authorization"] == basic("bob", "x")


def test_gateway_flag_beats_openfaas_url(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    fake_gateway.on("GET", "/system/functions", Reply(200, []))
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_cli("list", "--gateway", fake_gateway.url, env={"OPENFAAS_URL": dead})
    assert result.exit_code == 0, result.output
    result = run_cli("--gateway", fake_gateway.url, "list", env={"OPENFAAS_URL": dead})
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- deploy


def test_deploy_puts_then_posts_on_404_like_faas_cli(
    run_cli: RunCli, fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    existing = {"old"}

    def put(request: Recorded) -> Reply:
        return Reply(202) if request.json()["service"] in existing else Reply(404, "not found")

    fake_gateway.on("PUT", "/system/functions", put)
    fake_gateway.on("POST", "/system/functions", Reply(202))
    stack = host_stack(tmp_path, "old", "new")
    result = run_cli("deploy", "-f", str(stack), "--gateway", fake_gateway.url)
    assert result.exit_code == 0, result.output
    calls = [(r.method, r.json()["service"]) for r in fake_gateway.requests]
    assert calls == [("PUT", "old"), ("PUT", "new"), ("POST", "new")]
    assert "Updated old" in result.output
    assert "Deployed new" in result.output
    body = fake_gateway.requests[-1].json()
    assert body["envProcess"] == "cat"
    assert fake_gateway.requests[-1].headers["Content-Type"] == "application/json"


def test_deploy_filter_and_stack_gateway(
    run_cli: RunCli, fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    fake_gateway.on("PUT", "/system/functions", Reply(202))
    stack = tmp_path / "stack.yml"
    stack.write_text(
        f"provider: {{name: openfaas, gateway: '{fake_gateway.url}'}}\n"
        "functions:\n  a-one:\n    fprocess: cat\n  b-two:\n    fprocess: cat\n"
    )
    result = run_cli("deploy", "-f", str(stack), "--filter", "b-*")
    assert result.exit_code == 0, result.output
    assert [r.json()["service"] for r in fake_gateway.requests] == ["b-two"]
    line = one_line_error(run_cli("deploy", "-f", str(stack), "--filter", "zzz"))
    assert "matches --filter" in line


def test_deploy_refused_update_stops_with_the_reason(
    run_cli: RunCli, fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    fake_gateway.on("PUT", "/system/functions", Reply(400, "unable to find secret: api-key\n"))
    line = one_line_error(
        run_cli("deploy", "-f", str(host_stack(tmp_path, "fn")), "--gateway", fake_gateway.url)
    )
    assert "400" in line
    assert "unable to find secret: api-key" in line


# ---------------------------------------------------------------- list, describe, scale, remove


STATUS = {
    "name": "echo",
    "namespace": "openfaas-fn",
    "image": "echo:latest",
    "replicas": 2,
    "availableReplicas": 1,
    "invocationCount": 7,
    "labels": {"com.openfaas.scale.min": "1"},
    "annotations": {},
    "secrets": ["api-key"],
    "envProcess": "",
    "createdAt": "2024-01-01T00:00:00Z",
    "usage": {"cpu": 1.5, "totalMemoryBytes": 31457280},
}


def test_list_table_and_json(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    fake_gateway.on("GET", "/system/functions", Reply(200, [STATUS]))
    result = run_cli("list", "--gateway", fake_gateway.url)
    assert result.exit_code == 0
    header, row = result.stdout.strip().splitlines()
    assert header.split() == ["NAME", "INVOCATIONS", "READY", "IMAGE", "/", "PROCESS"]
    assert row.split() == ["echo", "7", "1/2", "echo:latest"]
    result = run_cli("list", "--json", "-n", "team-a", "--gateway", fake_gateway.url)
    assert json.loads(result.stdout) == [STATUS]
    assert fake_gateway.requests[-1].path == "/system/functions?namespace=team-a"


def test_describe(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    fake_gateway.on("GET", "/system/function/echo", Reply(200, STATUS))
    result = run_cli("describe", "echo", "--gateway", fake_gateway.url)
    assert result.exit_code == 0
    assert fake_gateway.requests[-1].path == "/system/function/echo?usage=1"
    text = result.stdout
    assert "Status:" in text
    assert "Ready" in text
    assert f"{fake_gateway.url}/function/echo" in text
    assert "memory 30.0 MiB" in text
    result = run_cli("describe", "echo", "--json", "--gateway", fake_gateway.url)
    assert json.loads(result.stdout) == STATUS


def test_scale_and_remove_bodies(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    fake_gateway.on("POST", "/system/scale-function/echo", Reply(202))
    fake_gateway.on("DELETE", "/system/functions", Reply(202))
    assert run_cli("scale", "echo", "-r", "0", "--gateway", fake_gateway.url).exit_code == 0
    assert fake_gateway.requests[-1].json() == {"serviceName": "echo", "replicas": 0}
    result = run_cli("remove", "echo", "-n", "team-a", "--gateway", fake_gateway.url)
    assert result.exit_code == 0
    assert fake_gateway.requests[-1].json() == {"functionName": "echo", "namespace": "team-a"}


# ---------------------------------------------------------------- invoke


def test_invoke_sends_stdin_without_credentials(
    run_cli: RunCli, fake_gateway: FakeGateway, state_dir: Path
) -> None:
    write_credentials(state_dir)

    def echo(request: Recorded) -> Reply:
        return Reply(200, request.body.upper(), {"Content-Type": "text/plain"})

    fake_gateway.on("PUT", "/function/echo.team-a/sub/path", echo)
    result = run_cli(
        "invoke",
        "echo",
        "-n",
        "team-a",
        "--method",
        "put",
        "--path",
        "sub/path",
        "-H",
        "X-Trace: 42",
        "-q",
        "a=1",
        "--gateway",
        fake_gateway.url,
        input=b"hello",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"HELLO"
    request = fake_gateway.requests[-1]
    assert request.path == "/function/echo.team-a/sub/path?a=1"
    assert request.headers["X-Trace"] == "42"
    assert "Authorization" not in request.headers


def test_invoke_async_prints_the_call_id(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    fake_gateway.on("POST", "/async-function/echo", Reply(202, "", {"X-Call-Id": "abc-123"}))
    result = run_cli(
        "invoke",
        "echo",
        "--async",
        "--callback-url",
        "http://127.0.0.1:9/cb",
        "--gateway",
        fake_gateway.url,
        input=b"x",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "abc-123"
    assert fake_gateway.requests[-1].headers["X-Callback-Url"] == "http://127.0.0.1:9/cb"


def test_invoke_failure_is_one_line(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    fake_gateway.on(
        "POST", "/function/echo", Reply(502, "replica gone\n", {"X-OpenFaaS-Internal": "gateway"})
    )
    line = one_line_error(run_cli("invoke", "echo", "--gateway", fake_gateway.url, input=b""))
    assert "answered 502 (from gateway): replica gone" in line
    line = one_line_error(run_cli("invoke", "ghost", "--gateway", fake_gateway.url, input=b""))
    assert "function 'ghost' not found" in line
    result = run_cli("invoke", "echo", "--callback-url", "http://x", "--gateway", fake_gateway.url)
    assert result.exit_code == 2
    assert "--callback-url needs --async" in result.stderr


# ---------------------------------------------------------------- logs


def test_logs_query_and_format(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    lines = [
        {
            "name": "echo",
            "namespace": "openfaas-fn",
            "instance": "r1",
            "timestamp": "2024-01-01T00:00:00Z",
            "text": "first",
        },
        {
            "name": "echo",
            "namespace": "openfaas-fn",
            "instance": "r2",
            "timestamp": "2024-01-01T00:00:01Z",
            "text": "second",
        },
    ]
    ndjson = "".join(json.dumps(line) + "\n" for line in lines)
    fake_gateway.on(
        "GET", "/system/logs", Reply(200, ndjson, {"Content-Type": "application/x-ndjson"})
    )
    result = run_cli(
        "logs",
        "echo",
        "--tail",
        "5",
        "--instance",
        "r1",
        "--since",
        "10m",
        "--gateway",
        fake_gateway.url,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "2024-01-01T00:00:00Z echo (r1) first",
        "2024-01-01T00:00:01Z echo (r2) second",
    ]
    path = fake_gateway.requests[-1].path
    assert path.startswith("/system/logs?name=echo&follow=false&instance=r1&tail=5&since=")
    result = run_cli("logs", "echo", "--json", "--gateway", fake_gateway.url)
    assert [json.loads(line) for line in result.stdout.splitlines()] == lines
    result = run_cli("logs", "echo", "--since", "yesterday", "--gateway", fake_gateway.url)
    assert result.exit_code == 2


# ---------------------------------------------------------------- secrets


def test_secret_values_from_literal_file_and_stdin(
    run_cli: RunCli, fake_gateway: FakeGateway, tmp_path: Path
) -> None:
    fake_gateway.on("POST", "/system/secrets", Reply(202))
    fake_gateway.on("PUT", "/system/secrets", Reply(202))
    url = fake_gateway.url
    assert (
        run_cli("secret", "create", "k1", "--from-literal", "v1", "--gateway", url).exit_code == 0
    )
    assert fake_gateway.requests[-1].json() == {"name": "k1", "value": "v1"}
    binary = tmp_path / "blob"
    binary.write_bytes(b"\x00\xffdata")
    result = run_cli("secret", "update", "k1", "--from-file", str(binary), "--gateway", url)
    assert result.exit_code == 0, result.output
    sent = fake_gateway.requests[-1]
    assert sent.method == "PUT"
    assert base64.b64decode(sent.json()["rawValue"]) == b"\x00\xffdata"
    result = run_cli("secret", "create", "k2", "-n", "team-a", "--gateway", url, input=b"piped")
    assert result.exit_code == 0, result.output
    body = fake_gateway.requests[-1].json()
    assert body["namespace"] == "team-a"
    assert base64.b64decode(body["rawValue"]) == b"piped"
    assert "piped" not in result.output


def test_secret_conflicts_and_listing(run_cli: RunCli, fake_gateway: FakeGateway) -> None:
    url = fake_gateway.url
    fake_gateway.on("POST", "/system/secrets", Reply(409, "secret exists"))
    line = one_line_error(run_cli("secret", "create", "k", "--from-literal", "v", "--gateway", url))
    assert "already exists" in line
    line = one_line_error(run_cli("secret", "remove", "k", "--gateway", url))
    assert "secret 'k' not found" in line
    listing = [{"name": "k", "namespace": "openfaas-fn"}]
    fake_gateway.on("GET", "/system/secrets", Reply(200, listing))
    result = run_cli("secret", "list", "--gateway", url)
    assert result.stdout.split() == ["NAME", "NAMESPACE", "k", "openfaas-fn"]
    assert json.loads(run_cli("secret", "list", "--json", "--gateway", url).stdout) == listing
    result = run_cli("secret", "create", "k", "--gateway", url, input=b"")
    assert result.exit_code == 2


@pytest.mark.parametrize("args", [["remove"], ["scale", "fn"], ["invoke"]])
def test_usage_errors_exit_2(run_cli: RunCli, args: list[str]) -> None:
    assert run_cli(*args).exit_code == 2
