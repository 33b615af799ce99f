"""`faasbus up` in a subprocess: it starts, serves the examples, the CLI works against it with the
generated credentials, state survives a restart, and SIGTERM leaves no process behind.

One stack is shared by the module (starting it builds bundles and starts replicas); the last test
stops it. Ports are free ones, the state directory is temporary, and every process the run started
is found again by pid (printed by `faasbus up`) and by a /proc scan for the state directory or the
run's token in a process's command line or environment.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from faasbus.bus import NatsServer, NatsServerOptions, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "stack.yml"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0


@dataclass
class Up:
    """A running `faasbus up` and what it printed."""

    process: subprocess.Popen[str]
    state_dir: Path
    url: str
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    pumps: list[threading.Thread] = field(default_factory=list)

    def wait_for(self, pattern: str, timeout_s: float, start: int = 0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while True:
                for line in self.lines[start:]:
                    match = regex.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    tail = "\n".join(self.lines[-40:])
                    pytest.fail(
                        f"no line matching {pattern!r} from faasbus up; last output:\n{tail}"
                    )
                self.changed.wait(min(remaining, 0.5))

    def pids(self) -> set[int]:
        found = set()
        for line in list(self.lines):
            match = re.search(r"started \(pid (\d+)\)", line)
            if match:
                found.add(int(match.group(1)))
        return found


def _pump(up: Up, stream: object) -> None:
    for line in stream:  # type: ignore[attr-defined]
        with up.changed:
            up.lines.append(line.rstrip("\n"))
            up.changed.notify_all()


def start_up(state_dir: Path, port: int, nats_port: int, *extra: str) -> Up:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENFAAS_URL", "port")}
    env["FAASBUS_STATE_DIR"] = str(state_dir)
    argv = [
        sys.executable,
        "-m",
        "faasbus.cli",
        "up",
        "--port",
        str(port),
        "--nats-port",
        str(nats_port),
        "--stop-timeout",
        "30",
        *extra,
    ]
    process = subprocess.Popen(
        argv,
        cwd=state_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    up = Up(process, state_dir, f"http://127.0.0.1:{port}")
    for stream in (process.stdout, process.stderr):
        thread = threading.Thread(target=_pump, args=(up, stream), daemon=True)
        thread.start()
        up.pumps.append(thread)
    return up


def process_alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[1].split()[0] != "Z"


def processes_mentioning(*needles: str) -> list[tuple[int, str]]:
    """Live processes whose command line or environment contains one of ``needles``."""
    found = []
    encoded = [needle.encode() for needle in needles if needle]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(n in cmdline or n in environ for n in encoded) and process_alive(int(entry.name)):
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


def stop_up(up: Up) -> int:
    if up.process.poll() is None:
        up.process.send_signal(signal.SIGTERM)
    try:
        code = up.process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        up.process.kill()
        code = up.process.wait()
    for thread in up.pumps:
        thread.join(timeout=5)
    for stream in (up.process.stdout, up.process.stderr):
        if stream is not None:
            stream.close()
    return code


def kill_leftovers(up: Up) -> None:
    """Teardown safety net (the final test asserts there is nothing to kill)."""
    for pid, _cmd in processes_mentioning(str(up.state_dir)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def http(
    method: str, url: str, body: bytes | None = None, auth: tuple[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - loopback
    if auth is not None:
        import base64  # noqa: PLC0415

        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read(), dict(response.headers.items())
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers.items())


def wait_http_ok(url: str, body: bytes, timeout_s: float) -> bytes:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, data, _ = http("POST", url, body)
        except OSError as exc:
            last = exc
        else:
            if status == 200:
                return data
            last = (status, data[:200])
        time.sleep(0.2)
    pytest.fail(f"{url} never answered 200 within {timeout_s}s (last: {last!r})")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    state_dir = tmp_path_factory.mktemp("up") / "state"
    running = start_up(state_dir, free_port(), free_port(), "-f", str(EXAMPLES))
    try:
        running.wait_for(r"gateway ready at http://127\.0\.0\.1:\d+", START_TIMEOUT_S)
        running.wait_for(r"deploy (finished|failed)", START_TIMEOUT_S)
        wait_http_ok(f"{running.url}/function/echo", b"warm-up", 60.0)
        yield running
    finally:
        stop_up(running)
        kill_leftovers(running)


@pytest.fixture(scope="module")
def cli(up: Up) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `faasbus` console entry point against the stack, credentials from state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAASBUS_", "OPENFAAS_"))}
    env.update({"OPENFAAS_URL": up.url, "FAASBUS_STATE_DIR": str(up.state_dir)})

    def run(*args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [sys.executable, "-m", "faasbus.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if check and completed.returncode != 0:
            pytest.fail(f"faasbus {' '.join(args)} failed: {completed.stderr.strip()}")
        return completed

    return run


def test_up_serves_the_examples_and_guards_the_api(up: Up) -> None:
    assert up.wait_for(r"deploy (finished|failed)", 1).group(1) == "finished"
    assert wait_http_ok(f"{up.url}/function/echo", b"ping", 10) == b"ping"
    assert wait_http_ok(f"{up.url}/function/hello", b"faasbus", 30) == b"Hello, faasbus!\n"
    assert wait_http_ok(f"{up.url}/function/wc", b"one two\n", 30).split() == [b"1", b"2", b"8"]
    # Credentials: created on first start, 0600, and where the banner says.
    user_file = up.state_dir / "secrets" / "basic-auth-user"
    password_file = up.state_dir / "secrets" / "basic-auth-password"
    assert user_file.read_text().strip() == "admin"
    for path in (user_file, password_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    up.wait_for(re.escape(f"password     in {password_file}"), 1)
    password = password_file.read_text().strip()
    assert http("GET", f"{up.url}/system/functions")[0] == 401
    assert http("GET", f"{up.url}/system/functions", auth=("admin", "wrong"))[0] == 401
    status, body, _ = http("GET", f"{up.url}/system/functions", auth=("admin", password))
    assert status == 200
    assert {"echo", "hello", "wc"} <= {fn["name"] for fn in json.loads(body)}
    # faas-cli's deploy relies on it: an update of an unknown function is 404, not a create.
    ghost = json.dumps({"service": f"ghost-{uuid.uuid4().hex[:6]}", "envProcess": "cat"}).encode()
    assert http("PUT", f"{up.url}/system/functions", ghost, auth=("admin", password))[0] == 404


def test_cli_list_describe_invoke(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    listed = json.loads(cli("list", "--json").stdout)
    assert {"echo", "hello", "wc"} <= {fn["name"] for fn in listed}
    table = cli("list").stdout
    assert table.split()[:3] == ["NAME", "INVOCATIONS", "READY"]
    assert cli("invoke", "echo", stdin="over the CLI").stdout == "over the CLI"
    assert cli("invoke", "hello", stdin="cli").stdout == "Hello, cli!\n"
    status = json.loads(cli("describe", "echo", "--json").stdout)
    assert status["name"] == "echo"
    assert status["availableReplicas"] >= 1
    assert "Ready" in cli("describe", "echo").stdout
    missing = cli("describe", "no-such-fn", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "faasbus: function 'no-such-fn' not found"


def test_cli_deploy_put_then_post_scale_logs_remove(
    up: Up, cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    name = f"cat-{uuid.uuid4().hex[:8]}"
    stack = tmp_path / "stack.yml"
    stack.write_text(f"provider: {{name: openfaas}}\nfunctions:\n  {name}:\n    fprocess: cat\n")
    first = cli("deploy", "-f", str(stack))
    assert f"Deployed {name} (202)" in first.stdout  # PUT answered 404, then POST created it
    assert wait_http_ok(f"{up.url}/function/{name}", b"meow", 30) == b"meow"
    again = cli("deploy", "-f", str(stack))
    assert f"Updated {name} (202)" in again.stdout  # PUT updated it
    assert "Scaled" in cli("scale", name, "--replicas", "2").stdout
    deadline = time.monotonic() + 30
    while json.loads(cli("describe", name, "--json").stdout)["availableReplicas"] < 2:
        assert time.monotonic() < deadline, "scale to 2 never became ready"
        time.sleep(0.3)
    # Log lines reach FAAS_LOGS asynchronously: poll until the replicas' start lines are there.
    deadline = time.monotonic() + 20
    entries: list[dict[str, str]] = []
    while not entries:
        assert time.monotonic() < deadline, "no log lines for the function"
        logs = cli("logs", name, "--tail", "50", "--json").stdout.splitlines()
        entries = [json.loads(line) for line in logs]
    assert all(entry["name"] == name for entry in entries)
    assert len({entry["instance"] for entry in entries}) >= 1
    cli("remove", name)
    deadline = time.monotonic() + 30
    while cli("describe", name, check=False).returncode == 0:
        assert time.monotonic() < deadline, "removed function still described"
        time.sleep(0.3)


def test_cli_secrets(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    name = f"key-{uuid.uuid4().hex[:8]}"
    cli("secret", "create", name, "--from-literal", "first-value")
    assert name in {s["name"] for s in json.loads(cli("secret", "list", "--json").stdout)}
    duplicate = cli("secret", "create", name, "--from-literal", "x", check=False)
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    cli("secret", "update", name, stdin="second-value")
    listing = cli("secret", "list").stdout
    assert name in listing
    assert "value" not in listing
    cli("secret", "remove", name)
    assert name not in {s["name"] for s in json.loads(cli("secret", "list", "--json").stdout)}
    gone = cli("secret", "remove", name, check=False)
    assert gone.returncode == 1
    assert f"secret '{name}' not found" in gone.stderr


def test_a_crashed_component_is_restarted(up: Up) -> None:
    match = up.wait_for(r"gateway started \(pid (\d+)\)", 1)
    old_pid = int(match.group(1))
    mark = len(up.lines)
    os.kill(old_pid, signal.SIGKILL)
    up.wait_for(r"gateway exited with code -9; restarting in", 30, start=mark)
    new_pid = int(up.wait_for(r"gateway started \(pid (\d+)\)", 30, start=mark).group(1))
    assert new_pid != old_pid
    # Same port, same provider: the function answers again through the new gateway.
    assert wait_http_ok(f"{up.url}/function/echo", b"after a crash", 30) == b"after a crash"


def test_sigterm_stops_everything_and_state_survives_a_restart(up: Up) -> None:
    token = (up.state_dir / "run" / "up.token").read_text().strip()
    password = (up.state_dir / "secrets" / "basic-auth-password").read_text()
    first_pids = up.pids()
    assert len(first_pids) >= 3  # nats-server, provider, gateway (and the deploy, workers...)
    assert stop_up(up) == 0
    up.wait_for(r"faasbus up: stopped", 1)
    assert [pid for pid in first_pids if process_alive(pid)] == []
    assert processes_mentioning(str(up.state_dir), f"FAASBUS_UP_TOKEN={token}") == []

    # Same state directory again, deploying nothing: the functions come back from the store.
    again = start_up(up.state_dir, free_port(), free_port(), "--no-deploy")
    try:
        again.wait_for(r"gateway ready at", START_TIMEOUT_S)
        assert (up.state_dir / "secrets" / "basic-auth-password").read_text() == password
        assert wait_http_ok(f"{again.url}/function/echo", b"still here", 60) == b"still here"
        assert stop_up(again) == 0
        assert [pid for pid in again.pids() if process_alive(pid)] == []
        assert processes_mentioning(str(up.state_dir)) == []
    finally:
        stop_up(again)
        kill_leftovers(again)


def test_up_with_an_external_nats_starts_no_server(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with NatsServer(NatsServerOptions(store_dir=tmp_path / "external-nats")) as external:
        running = start_up(
            state_dir, free_port(), free_port(), "--nats-url", external.url, "--no-deploy"
        )
        try:
            running.wait_for(r"gateway ready at", START_TIMEOUT_S)
            assert not any("nats-server started" in line for line in running.lines)
            running.wait_for(re.escape(f"nats         {external.url}"), 1)
            stack = tmp_path / "stack.yml"
            stack.write_text("functions:\n  upper:\n    fprocess: tr a-z A-Z\n")
            env = {k: v for k, v in os.environ.items() if not k.startswith("OPENFAAS_")}
            env.update({"OPENFAAS_URL": running.url, "FAASBUS_STATE_DIR": str(state_dir)})
            deployed = subprocess.run(
                [sys.executable, "-m", "faasbus.cli", "deploy", "-f", str(stack)],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=False,
            )
            assert deployed.returncode == 0, deployed.stderr
            assert wait_http_ok(f"{running.url}/function/upper", b"shout", 30) == b"SHOUT"
            assert stop_up(running) == 0
            assert external.running()
            assert processes_mentioning(str(state_dir)) == []
        finally:
            stop_up(running)
            kill_leftovers(running)
