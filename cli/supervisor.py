"""Supervised child processes of ``faasbus up``: start, pump output, probe, restart, stop.

Each service runs as ``sys.executable -m <module>`` in a session (and so a process group) of its
own, with an explicit environment. Its stdout and stderr are read for its whole life and printed
line by line prefixed with the service name. A service that exits while the stack is running is
restarted after an exponential backoff (0.5 s doubling to 30 s, back to 0.5 s once a run lasted
60 s), so a crash loop is visible but does not spin. One-shot children (the initial deploy) run
once.

Stopping sends SIGTERM to the child (each component drains on SIGTERM, and the provider stops its
replicas itself, in order), waits ``stop_timeout_s``, then SIGKILLs the child's whole process group,
which also takes anything it started and did not reap. Terminal signals never reach the children
directly: they are not in the terminal's foreground group, so only the launcher decides the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import click

from faasbus.cli.errors import LauncherError

__all__ = ["Child", "ChildSpec", "Printer"]

_INITIAL_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 30.0
_STABLE_RUN_S = 60.0
_PROBE_INTERVAL_S = 0.1
_LINE_LIMIT = 1024 * 1024
_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan")


class Printer:
    """Writes prefixed lines to stdout; colours the prefix on a terminal."""

    def __init__(self, *, colour: bool | None = None) -> None:
        self.colour = sys.stdout.isatty() if colour is None else colour
        self._palette: dict[str, str] = {}
        self._width = 12

    def _prefix(self, name: str) -> str:
        text = f"{name:>{self._width}} |"
        if not self.colour:
            return text
        colour = self._palette.setdefault(name, _COLOURS[len(self._palette) % len(_COLOURS)])
        return click.style(text, fg=colour)

    def line(self, name: str, text: str) -> None:
        sys.stdout.write(f"{self._prefix(name)} {text}\n")
        sys.stdout.flush()

    def say(self, text: str) -> None:
        """A launcher message (not a child's output)."""
        sys.stdout.write(f"faasbus up: {text}\n")
        sys.stdout.flush()


@dataclass(frozen=True)
class ChildSpec:
    """How to run one child: ``argv`` with ``env``; readiness from ``health_url`` if given."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    health_url: str | None = None
    restart: bool = True


class Child:
    """One supervised child process (restarted on exit unless stopping or one-shot)."""

    def __init__(
        self,
        spec: ChildSpec,
        printer: Printer,
        *,
        stop_timeout_s: float = 10.0,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self.spec = spec
        self.printer = printer
        self.stop_timeout_s = stop_timeout_s
        self.on_exit = on_exit
        self.pids: list[int] = []
        self.exit_code: int | None = None
        self.ready = asyncio.Event()
        self.finished = asyncio.Event()
        self._stopping = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None or process.returncode is not None else process.pid

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"child-{self.name}")

    async def _spawn(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            env=dict(self.spec.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=_LINE_LIMIT,
        )
        self.pids.append(process.pid)
        self.printer.say(f"{self.name} started (pid {process.pid})")
        return process

    async def _pump(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    self.printer.line(self.name, exc.partial.decode(errors="replace").rstrip())
                return
            except asyncio.LimitOverrunError as exc:
                raw = await stream.readexactly(exc.consumed)
            self.printer.line(self.name, raw.decode(errors="replace").rstrip("\r\n"))

    async def _probe(self, process: asyncio.subprocess.Process) -> None:
        url = self.spec.health_url
        if url is None:
            self.ready.set()
            return
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while process.returncode is None:
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            self.ready.set()
                            return
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass
                await asyncio.sleep(_PROBE_INTERVAL_S)

    async def _run(self) -> None:
        backoff = _INITIAL_BACKOFF_S
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    process = await self._spawn()
                except OSError as exc:
                    self.printer.say(f"{self.name} could not start: {exc}")
                    return
                self._process = process
                pumps = [
                    asyncio.create_task(self._pump(process.stdout), name=f"{self.name}-stdout"),
                    asyncio.create_task(self._pump(process.stderr), name=f"{self.name}-stderr"),
                ]
                probe = asyncio.create_task(self._probe(process), name=f"{self.name}-probe")
                code = await self._wait_or_stop(process)
                self.exit_code = code
                await _finish(probe, timeout_s=0)
                # Output still buffered in the pipes belongs to this run; a grandchild that kept
                # the pipe open must not hold the supervisor, hence the bound.
                for pump in pumps:
                    await _finish(pump, timeout_s=2.0)
                self.ready.clear()
                if self.on_exit is not None:
                    self.on_exit(code)
                if self._stopping.is_set() or not self.spec.restart:
                    return
                if time.monotonic() - started >= _STABLE_RUN_S:
                    backoff = _INITIAL_BACKOFF_S
                self.printer.say(
                    f"{self.name} exited with code {code}; restarting in {backoff:.1f}s"
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
        finally:
            self.finished.set()

    async def _wait_or_stop(self, process: asyncio.subprocess.Process) -> int:
        """The exit code; when a stop is asked first: SIGTERM, wait, then SIGKILL the group.

        Stopping lives here, in the one task that owns the process, so a stop that arrives
        while the process is still being spawned is applied as soon as it exists.
        """
        exited = asyncio.create_task(process.wait(), name=f"{self.name}-wait")
        stopping = asyncio.create_task(self._stopping.wait(), name=f"{self.name}-stopping")
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(asyncio.shield(exited), self.stop_timeout_s)
                except TimeoutError:
                    self.printer.say(
                        f"{self.name} still running {self.stop_timeout_s:.0f}s after SIGTERM; "
                        "killing its process group"
                    )
                    self._signal_group(signal.SIGKILL)
            return await exited
        finally:
            await _finish(stopping, timeout_s=0)
            await _finish(exited, timeout_s=0)

    async def wait_ready(self, timeout_s: float) -> None:
        """Return once the health URL answers 200; LauncherError after ``timeout_s``."""
        ready = asyncio.create_task(self.ready.wait(), name=f"{self.name}-ready")
        done = asyncio.create_task(self.finished.wait(), name=f"{self.name}-done")
        try:
            await asyncio.wait(
                {ready, done}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (ready, done):
                await _finish(task, timeout_s=0)
        if not self.ready.is_set():
            raise LauncherError(
                f"{self.name} did not become ready within {timeout_s:.0f}s "
                f"(health check {self.spec.health_url}); see its output above"
            )

    def _signal_group(self, sig: signal.Signals) -> None:
        for pid in self.pids[-1:]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)

    def kill_now(self) -> None:
        """SIGKILL the current process group at once (a second Ctrl-C)."""
        self._stopping.set()
        self._signal_group(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL the whole group; returns once the supervisor ended."""
        self._stopping.set()
        if self._task is not None:
            # The run loop does the signalling; the margin covers pumps and the SIGKILL path.
            await _finish(self._task, timeout_s=self.stop_timeout_s + 5.0)
        # Whatever is left in the group (processes the child started and did not stop) goes now.
        self._signal_group(signal.SIGKILL)


async def _finish(task: asyncio.Task[Any], *, timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for ``task``, then cancel it and wait for the cancellation."""
    if not task.done() and timeout_s > 0:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
