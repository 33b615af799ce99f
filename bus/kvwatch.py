"""Follow a KV bucket for the life of a service: one loop shared by every watcher of the bus.

A watch ends when the connection drops or the server restarts; the loop starts it again (the
new watch replays current values first, so nothing is missed) and never gives up. The watcher is
stopped on the way out so nats-py's heartbeat and flow-control tasks end with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from nats.js.kv import KeyValue

__all__ = ["follow_bucket"]

log = structlog.get_logger(__name__)

Apply = Callable[[str, bytes | None, str | None], None]


async def follow_bucket(kv: KeyValue, apply: Apply, synced: asyncio.Event, *, label: str) -> None:
    """Call ``apply(key, value, operation)`` for every entry and change; set ``synced`` once the
    initial values are in. Runs until cancelled."""
    while True:
        try:
            watcher = await kv.watchall()
            try:
                async for entry in watcher:
                    if entry is None:  # end of the initial values
                        synced.set()
                        continue
                    apply(entry.key, entry.value, entry.operation)
            finally:
                # Fails only when the connection is already closed: close watchers first.
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("kv_watch_restart", bucket=label, error=str(exc))
            await asyncio.sleep(0.5)
