"""The watchdog process: settings, start-up, the stop event and the shutdown order.

`main` (run by ``python -m faasbus.watchdog`` and the ``faasbus-watchdog`` script) owns the
process: it reads the settings (exit 2 on a bad one), imports a python-mode handler (exit 1 if it
fails, before anything listens), and runs `serve`, which installs the signal handlers, composes
the resources and waits on a stop event.

Start-up order: the runtime starts (``http``: the function process), the listener opens, the
runtime becomes ready (``http``: the upstream port accepts; requests that arrive meanwhile wait),
then the lock file is written and exactly one line goes to stdout,
``faasbus-watchdog listening on HOST:PORT``. Everything else goes to stderr; stdout is reserved
for that line, so output a handler prints is redirected to stderr.

Shutdown order on SIGTERM or SIGINT (REFERENCE.md section 5, of-watchdog ``main.go``):
``/_/health`` answers 503 and the lock file goes; for ``healthcheck_interval`` calls are still
served so that routers notice and stop sending traffic; then the listener closes and in-flight
calls drain for up to ``write_timeout``; then the runtime stops (``http``: SIGTERM, then SIGKILL
to the function's process group). Exit 0. A second signal skips the interval. If the ``http``
function dies, the watchdog stops at once and exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from aiohttp import web

from faasbus.watchdog.base import FunctionRuntime
from faasbus.watchdog.classic import ClassicRuntime
from faasbus.watchdog.config import Mode, WatchdogConfig
from faasbus.watchdog.errors import ConfigError, HandlerLoadError, WatchdogError
from faasbus.watchdog.http_mode import HttpRuntime
from faasbus.watchdog.logs import configure_logging, get_logger
from faasbus.watchdog.process import install_child_watcher
from faasbus.watchdog.python_mode import PythonRuntime, load_handler
from faasbus.watchdog.serializing import SerializingRuntime
from faasbus.watchdog.server import LockFile, ServerState, create_server
from faasbus.watchdog.static import StaticRuntime
from faasbus.watchdog.streaming import StreamingRuntime

__all__ = ["build_runtime", "main", "serve"]

_log = get_logger(__name__)
ANNOUNCE = "faasbus-watchdog listening on {host}:{port}"


def build_runtime(
    config: WatchdogConfig,
    handler: Callable[..., Any] | None,
    *,
    on_exit: Callable[[int], None],
) -> FunctionRuntime:
    """The runtime for ``config.mode``; `handler` is the imported python-mode function."""
    match config.mode:
        case Mode.CLASSIC:
            return ClassicRuntime(config)
        case Mode.SERIALIZING:
            return SerializingRuntime(config)
        case Mode.STREAMING:
            return StreamingRuntime(config)
        case Mode.HTTP:
            return HttpRuntime(config, on_exit=on_exit)
        case Mode.STATIC:
            return StaticRuntime(config)
        case Mode.PYTHON:
            if handler is None:
                raise WatchdogError("python mode needs a loaded handler")
            return PythonRuntime(config, handler)


class _Stop:
    """Why and how the watchdog stops: set by signals and by a dead function process."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.hurry = asyncio.Event()
        self.exit_code = 0

    def on_signal(self, sig: signal.Signals) -> None:
        if self.requested.is_set():
            self.hurry.set()
        _log.info("signal_received", signal=sig.name)
        self.requested.set()

    def on_function_exit(self, returncode: int) -> None:
        del returncode  # logged by the runtime
        self.exit_code = 1
        self.hurry.set()
        self.requested.set()


async def _ready_or_stopped(runtime: FunctionRuntime, stop: _Stop) -> bool:
    """Wait for the runtime to be ready; False when a stop came first.

    Raises what ``wait_ready`` raises (``http``: the function exited before listening).
    """
    ready = asyncio.create_task(runtime.wait_ready(), name="wait-ready")
    stopped = asyncio.create_task(stop.requested.wait(), name="stop-requested")
    try:
        await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (ready, stopped):
            task.cancel()
        await asyncio.gather(ready, stopped, return_exceptions=True)
    if ready.cancelled():
        return False
    ready.result()
    return True


async def serve(
    config: WatchdogConfig,
    handler: Callable[..., Any] | None = None,
    *,
    announce: Callable[[str], None],
    install_signals: bool = True,
) -> int:
    """Run the watchdog until stopped; return the process exit code."""
    loop = asyncio.get_running_loop()
    install_child_watcher(loop)
    stop = _Stop()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.on_signal, sig)
    state = ServerState(
        max_inflight=config.max_inflight,
        suppress_lock=config.suppress_lock,
        lock_file=config.lock_file,
    )
    lock = LockFile(config.lock_file, suppressed=config.suppress_lock)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(lock.remove)
        try:
            runtime = await stack.enter_async_context(
                build_runtime(config, handler, on_exit=stop.on_function_exit)
            )
        except WatchdogError as exc:
            _log.error("runtime_start_failed", error=str(exc))
            return 1
        runner = web.ServerRunner(
            create_server(config, runtime, state),
            handle_signals=False,
            shutdown_timeout=config.write_timeout_s,
        )
        await runner.setup()
        # Pushed after the runtime: the exit stack drains calls before it stops the runtime.
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, config.listen_host, config.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            _log.error("listen_failed", host=config.listen_host, port=config.port, error=str(exc))
            return 1
        port = runner.addresses[0][1]

        try:
            if not await _ready_or_stopped(runtime, stop):
                return stop.exit_code
        except WatchdogError as exc:
            _log.error("runtime_not_ready", error=str(exc))
            return 1

        lock.create()
        state.ready = True
        announce(ANNOUNCE.format(host=config.listen_host, port=port))
        _log.info("ready", mode=config.mode.value, port=port, lock_file=str(config.lock_file))

        await stop.requested.wait()
        state.accepting = False
        lock.remove()
        if not stop.hurry.is_set() and config.healthcheck_interval_s > 0:
            _log.info("unhealthy_grace", healthcheck_interval_s=config.healthcheck_interval_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.healthcheck_interval_s):
                    await stop.hurry.wait()
        _log.info("draining", inflight=state.inflight, drain_limit_s=config.write_timeout_s)
    _log.info("stopped", exit_code=stop.exit_code)
    return stop.exit_code


def _split_stdout() -> TextIO:
    """Keep the real stdout for the announce line; point fd 1 at stderr for everything else."""
    try:
        fd = os.dup(sys.stdout.fileno())
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return sys.stdout
    return os.fdopen(fd, "w", buffering=1)


def main(environ: Mapping[str, str] | None = None) -> None:
    """Entry point of ``python -m faasbus.watchdog``; exits with the watchdog's status."""
    env = os.environ if environ is None else environ
    try:
        config = WatchdogConfig.from_env(env)
    except ConfigError as exc:
        sys.stderr.write(f"faasbus-watchdog: {exc}\n")
        sys.exit(2)
    configure_logging(debug=config.write_debug)
    announce_stream = _split_stdout()

    def announce(line: str) -> None:
        announce_stream.write(line + "\n")
        announce_stream.flush()

    handler: Callable[..., Any] | None = None
    if config.mode is Mode.PYTHON and config.handler_path is not None:
        try:
            handler = load_handler(config.handler_path, config.handler_function)
        except HandlerLoadError as exc:
            sys.stderr.write(f"faasbus-watchdog: {exc}\n")
            sys.exit(1)
    sys.exit(asyncio.run(serve(config, handler, announce=announce)))
