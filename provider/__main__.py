"""``python -m faasbus.provider``: the faas-provider HTTP API with the process backend.

One ``main()`` owns the signals (SIGTERM/SIGINT set a stop event), builds the settings once from
the environment, serves until stopped, and shuts down in order: stop accepting, let requests
finish (bounded), stop replicas gracefully, close the bus. With ``port=0`` the port is chosen
free; either way the one stdout line ``faasbus-provider listening on HOST:PORT`` says where it
serves, once it does.
"""

from __future__ import annotations

import asyncio
import faulthandler
import io
import os
import signal
import sys

import structlog
from aiohttp import web

from faasbus.bus import BusUnavailable, SettingsError, configure_logging
from faasbus.provider.app import create_app
from faasbus.provider.settings import ProviderSettings

log = structlog.get_logger(__name__)

_SHUTDOWN_TIMEOUT_S = 5.0


async def serve(settings: ProviderSettings, stop: asyncio.Event) -> None:
    app = create_app(settings, os.environ)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.listen_host, settings.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"faasbus-provider listening on {host}:{port}", flush=True)  # noqa: T201
        log.info("provider_listening", host=host, port=port, state_dir=str(settings.state_dir),
                 basic_auth=settings.basic_auth)  # fmt: skip
        await stop.wait()
        log.info("provider_stopping")
    finally:
        reporter = asyncio.create_task(_report_slow_stop(settings.stop_grace_s + 10))
        try:
            await runner.cleanup()
        finally:
            reporter.cancel()
    log.info("provider_stopped")


async def _report_slow_stop(after_s: float) -> None:
    """Log what a stop that outlasts its bounds still waits for (every bound is finite, so this
    names a bug), and arm a dump of every thread's stack for a hang outside the event loop."""
    faulthandler.dump_traceback_later(after_s + 15)
    await asyncio.sleep(after_s)
    for task in asyncio.all_tasks():
        if task is asyncio.current_task():
            continue
        stack = io.StringIO()
        task.print_stack(limit=8, file=stack)
        log.warning("provider_stop_slow", task=task.get_name(), stack=stack.getvalue())


async def _main(settings: ProviderSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(settings, stop)


def main() -> None:
    configure_logging("provider", level=os.environ.get("FAASBUS_LOG_LEVEL", "info"))
    try:
        settings = ProviderSettings.from_env(os.environ)
        asyncio.run(_main(settings))
        faulthandler.cancel_dump_traceback_later()
    except SettingsError as exc:
        print(f"faasbus-provider: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(2)
    except BusUnavailable as exc:
        print(f"faasbus-provider: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
