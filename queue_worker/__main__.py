"""``python -m faasbus.queue_worker``: one worker process; SIGTERM/SIGINT drain and stop it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from faasbus.bus import BusUnavailable, SettingsError, configure_logging
from faasbus.queue_worker.service import run_worker
from faasbus.queue_worker.settings import WorkerSettings


async def _main() -> None:
    settings = WorkerSettings.from_env(os.environ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop)


def main() -> None:
    configure_logging("queue-worker", level=os.environ.get("FAASBUS_LOG_LEVEL", "info"))
    try:
        asyncio.run(_main())
    except SettingsError as exc:
        print(f"faasbus-queue-worker: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(2)
    except BusUnavailable as exc:
        print(f"faasbus-queue-worker: {exc}", file=sys.stderr)  # noqa: T201
        sys.exit(1)


if __name__ == "__main__":
    main()
