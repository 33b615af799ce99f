"""Start real watchdog processes for the tests and talk to them.

A test gets a `WatchdogProcess`: ``python -m faasbus.watchdog`` started with ``port=0``, its port
read from the one announce line on stdout, its stderr in a file the test can read. Everything a
test starts is stopped by pid when the test ends (see conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parent / "functions"
ANNOUNCE = re.compile(rb"^faasbus-watchdog listening on 127\.0\.0\.1:(\d+)\n$")
START_TIMEOUT_S = 15.0


def base_environment(tmp_path: Path) -> dict[str, str]:
    """A small, predictable environment: no inherited watchdog settings."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
        "port": "0",
        "FAASBUS_LOCK_FILE": str(tmp_path / "watchdog.lock"),
        "healthcheck_interval": "0",
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


@dataclass
class WatchdogProcess:
    """One running ``python -m faasbus.watchdog``."""

    proc: subprocess.Popen[bytes]
    stderr_path: Path
    port: int = 0
    announce: bytes = b""
    _log: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def read_announce(self, timeout_s: float = START_TIMEOUT_S) -> bytes:
        """The first stdout line, or b"" if the process closed stdout (exited) first."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            raise TimeoutError(f"no announce line within {timeout_s}s; stderr:\n{self.stderr()}")
        return self.proc.stdout.readline()

    def wait_announced(self, timeout_s: float = START_TIMEOUT_S) -> None:
        line = self.read_announce(timeout_s)
        match = ANNOUNCE.match(line)
        if match is None:
            raise AssertionError(f"bad announce line {line!r}; stderr:\n{self.stderr()}")
        self.announce = line
        self.port = int(match.group(1))

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 15.0) -> int:
        return self.proc.wait(timeout=timeout_s)

    def rest_of_stdout(self) -> bytes:
        """Everything printed on stdout after the announce line (call after exit)."""
        assert self.proc.stdout is not None
        return self.proc.stdout.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class WatchdogFactory:
    """Starts watchdogs for one test and stops them all afterwards."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[WatchdogProcess] = []

    def start(self, env: Mapping[str, str], *, announced: bool = True) -> WatchdogProcess:
        full_env = base_environment(self.tmp_path)
        full_env.update(env)
        stderr_path = self.tmp_path / f"watchdog-{len(self.started)}.stderr"
        with stderr_path.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "faasbus.watchdog"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=full_env,
                cwd=self.tmp_path,
            )
        watchdog = WatchdogProcess(proc=proc, stderr_path=stderr_path)
        self.started.append(watchdog)
        if announced:
            watchdog.wait_announced()
        return watchdog

    def stop_all(self) -> None:
        for watchdog in self.started:
            watchdog.kill()


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
    what: str = "condition",
) -> None:
    """Poll `check` until it is true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    # The state is the field after the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}
