"""Run a short-lived child with its output captured, at a thousand forks per second.

``classic`` mode forks once per request, so the cost of a spawn is the mode's throughput. Measured
on the 2-core development machine (``fprocess=cat``, 50 concurrent):

* ``asyncio`` subprocesses spend ~330 µs of event-loop CPU per child (transports, protocols, three
  tasks per ``communicate()``) on top of the fork, and the fork itself blocks the loop while the
  kernel runs the child's ``exec``: ~850 req/s through the watchdog;
* here the pipes and a pidfd are watched straight on the event loop (no tasks, no transports),
  and children are started from a few threads with ``subprocess`` (its vfork releases the GIL
  during ``exec``, unlike ``os.posix_spawn``), so the loop serves other requests meanwhile:
  ~1,250-1,350 req/s against ~500-800 for ``posix_spawnp`` on the loop, same run, busy machine.

`Spawner.run` falls back to ``asyncio.create_subprocess_exec`` where ``pidfd_open`` is missing.
The child is a session leader (``setsid``), so a timeout kills its whole process group. A child
whose call is cancelled is killed the same way, and is still reaped by its pidfd callback.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from faasbus.watchdog.process import kill_group
from faasbus.watchdog.threads import HandlerThreads

__all__ = ["Captured", "Spawner", "fast_spawn_available"]

_READ_BYTES = 65536


class Captured(NamedTuple):
    """What a finished child left: its exit code and its output."""

    returncode: int
    stdout: bytes
    stderr: bytes


def fast_spawn_available() -> bool:
    """Whether this platform has what the fast path needs (Linux 5.3+, glibc posix_spawn)."""
    if not (hasattr(os, "pidfd_open") and hasattr(os, "posix_spawnp")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class _Started(NamedTuple):
    """A child just spawned, and the parent's ends of its pipes (-1 where there is none)."""

    pid: int
    stdin_fd: int
    stdout_fd: int
    stderr_fd: int
    popen: subprocess.Popen[bytes] | None


def _pipes(*, has_stdin: bool, combine: bool) -> tuple[list[int], list[int]]:
    """The child's and the parent's ends of stdin, stdout and stderr (-1 for none)."""
    child = [-1, -1, -1]
    parent = [-1, -1, -1]
    try:
        if has_stdin:
            child[0], parent[0] = os.pipe()
        parent[1], child[1] = os.pipe()
        if combine:
            child[2] = child[1]
        else:
            parent[2], child[2] = os.pipe()
    except BaseException:
        _close_all(child + parent)
        raise
    return child, parent


def _close_all(fds: Sequence[int]) -> None:
    for fd in set(fds):
        if fd >= 0:
            os.close(fd)


def _spawn_popen(
    argv: Sequence[str], env: Mapping[str, str], *, has_stdin: bool, combine: bool
) -> _Started:
    """Fork with ``subprocess``, from a thread: its vfork releases the GIL during exec."""
    child, parent = _pipes(has_stdin=has_stdin, combine=combine)
    try:
        popen = subprocess.Popen(
            argv,
            stdin=child[0] if has_stdin else subprocess.DEVNULL,
            stdout=child[1],
            stderr=child[2],
            env=env,
            start_new_session=True,
        )
    except BaseException:
        _close_all(parent)
        raise
    finally:
        _close_all(child)
    return _Started(popen.pid, parent[0], parent[1], parent[2], popen)


def _spawn_inline(
    argv: Sequence[str], env: Mapping[str, str], *, has_stdin: bool, combine: bool
) -> _Started:
    """Fork with ``posix_spawnp`` on the event loop (it holds the GIL during exec)."""
    child, parent = _pipes(has_stdin=has_stdin, combine=combine)
    # os.pipe() descriptors are close-on-exec: the child gets only what the actions install.
    actions: list[tuple[int, int, int] | tuple[int, int, str, int, int]] = []
    if has_stdin:
        actions.append((os.POSIX_SPAWN_DUP2, child[0], 0))
    else:
        actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
    actions.append((os.POSIX_SPAWN_DUP2, child[1], 1))
    actions.append((os.POSIX_SPAWN_DUP2, child[2], 2))
    try:
        pid = os.posix_spawnp(argv[0], list(argv), env, file_actions=actions, setsid=True)
    except BaseException:
        _close_all(parent)
        raise
    finally:
        _close_all(child)
    return _Started(pid, parent[0], parent[1], parent[2], None)


class _Child:
    """One spawned child driven by event-loop callbacks (no tasks, no transports)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, started: _Started, stdin: bytes) -> None:
        self._loop = loop
        self.pid = started.pid
        self._popen = started.popen
        self._stdout: list[bytes] = []
        self._stderr: list[bytes] = []
        self._returncode: int | None = None
        self._open_streams = 0
        self.done: asyncio.Future[None] = loop.create_future()
        self._pending = memoryview(stdin)
        self._writing = False
        self._stdin_fd = started.stdin_fd
        self._fds = [
            fd for fd in (started.stdin_fd, started.stdout_fd, started.stderr_fd) if fd >= 0
        ]
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._on_exit)
        self._watch(started.stdout_fd, self._stdout)
        if started.stderr_fd >= 0:
            self._watch(started.stderr_fd, self._stderr)
        if self._stdin_fd >= 0:
            os.set_blocking(self._stdin_fd, False)
            self._on_writable()

    def _watch(self, fd: int, sink: list[bytes]) -> None:
        os.set_blocking(fd, False)
        self._open_streams += 1
        self._loop.add_reader(fd, self._on_readable, fd, sink)

    def _on_readable(self, fd: int, sink: list[bytes]) -> None:
        try:
            data = os.read(fd, _READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            sink.append(data)
            return
        self._close_fd(fd)
        self._open_streams -= 1
        self._maybe_done()

    def _on_writable(self) -> None:
        fd = self._stdin_fd
        try:
            written = os.write(fd, self._pending)
        except BlockingIOError:
            written = 0
        except OSError:  # the child closed stdin or exited: it has what it wanted
            self._close_stdin()
            return
        self._pending = self._pending[written:]
        if not self._pending:
            self._close_stdin()
        elif not self._writing:
            self._writing = True
            self._loop.add_writer(fd, self._on_writable)

    def _close_stdin(self) -> None:
        if self._stdin_fd >= 0:
            if self._writing:
                self._loop.remove_writer(self._stdin_fd)
                self._writing = False
            self._close_fd(self._stdin_fd)
            self._stdin_fd = -1

    def _close_fd(self, fd: int) -> None:
        if fd in self._fds:
            self._fds.remove(fd)
            self._loop.remove_reader(fd)
            os.close(fd)

    def _on_exit(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid == 0:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._returncode = os.waitstatus_to_exitcode(status)
        if self._popen is not None:
            # Reaped here: tell the Popen, or its finaliser would queue it to be reaped again.
            self._popen.returncode = self._returncode
            self._popen = None
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._returncode is not None and self._open_streams == 0 and not self.done.done():
            self.done.set_result(None)

    def result(self) -> Captured:
        assert self._returncode is not None  # noqa: S101 - called after done
        return Captured(self._returncode, b"".join(self._stdout), b"".join(self._stderr))

    def abandon(self) -> None:
        """Kill the group and drop the pipes; the pidfd callback still reaps the child."""
        kill_group(self.pid, signal.SIGKILL)
        self._close_stdin()
        for fd in list(self._fds):
            self._close_fd(fd)
        self._open_streams = 0
        self._maybe_done()


class Spawner:
    """Runs short-lived children for ``classic`` mode; `close` is idempotent.

    Children start from a few threads by default. ``posix_spawnp`` holds the GIL while the
    kernel runs the child's ``exec`` (~1 ms on a busy machine), so spawning on the loop stops it
    for that long per child; ``subprocess``'s vfork releases the GIL, so threads overlap those
    waits with serving other requests. ``threads=0`` spawns on the loop instead.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, threads: int = 4) -> None:
        self._loop = loop
        self._threads = HandlerThreads(loop, max_threads=threads, eager=True) if threads else None

    def close(self) -> None:
        if self._threads is not None:
            self._threads.close()

    async def run(
        self,
        argv: Sequence[str],
        stdin: bytes,
        env: Mapping[str, str],
        *,
        combine: bool,
        timeout_s: float | None,
    ) -> Captured:
        """Run `argv` to completion with `stdin` and return its exit code and output.

        With `combine`, stderr shares stdout's pipe (``Captured.stderr`` is empty). Raises
        TimeoutError after killing the child's process group when `timeout_s` passes, and
        OSError when the command cannot be started.
        """
        if not _FAST:
            return await _run_asyncio(argv, stdin, env, combine=combine, timeout_s=timeout_s)
        async with asyncio.timeout(timeout_s):
            started = await self._start(argv, env, has_stdin=bool(stdin), combine=combine)
            child = _Child(self._loop, started, stdin)
            try:
                await asyncio.shield(child.done)
            except BaseException:
                child.abandon()
                raise
        return child.result()

    async def _start(
        self, argv: Sequence[str], env: Mapping[str, str], *, has_stdin: bool, combine: bool
    ) -> _Started:
        if self._threads is None:
            return _spawn_inline(argv, env, has_stdin=has_stdin, combine=combine)
        spawning = self._threads.submit(
            functools.partial(_spawn_popen, has_stdin=has_stdin, combine=combine), argv, env
        )
        try:
            return await asyncio.shield(spawning)
        except asyncio.CancelledError:
            # The thread still starts the child: kill it as soon as it exists.
            spawning.add_done_callback(functools.partial(_discard, self._loop))
            raise


def _discard(loop: asyncio.AbstractEventLoop, spawning: asyncio.Future[_Started]) -> None:
    if spawning.cancelled() or spawning.exception() is not None:
        return
    _Child(loop, spawning.result(), b"").abandon()


async def _run_asyncio(
    argv: Sequence[str],
    stdin: bytes,
    env: Mapping[str, str],
    *,
    combine: bool,
    timeout_s: float | None,
) -> Captured:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if combine else asyncio.subprocess.PIPE,
        env=dict(env),
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await process.communicate(stdin or None)
    except TimeoutError:
        kill_group(process.pid)
        await process.wait()
        raise
    except BaseException:
        kill_group(process.pid)
        raise
    returncode = process.returncode
    if returncode is None:  # pragma: no cover - communicate() waited for the exit
        returncode = await process.wait()
    return Captured(returncode, out, err or b"")


_FAST = fast_spawn_available()
