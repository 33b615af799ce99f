"""Owned background tasks: named, guarded, bounded, and drained then cancelled on shutdown.

Sources hand off events concurrently (a slow publish must not hold up the next event), but no
task may be dropped: each one lives in a :class:`TaskSet` that logs a crash, bounds how many run
at once, and on shutdown waits for them with a grace period before cancelling the rest (stop
intake → wait in-flight with a bound → cancel; STYLE.md "Async lifecycle").
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from faasbus.bus import cancel_and_wait

__all__ = ["TaskSet", "cancel_and_wait"]

log = structlog.get_logger(__name__)


class TaskSet:
    """Up to ``limit`` tasks at once; :meth:`spawn` waits for a free slot."""

    def __init__(self, name: str, *, limit: int) -> None:
        self._name = name
        self._limit = limit
        self._tasks: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()
        self._closing = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def full(self) -> bool:
        return len(self._tasks) >= self._limit

    async def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        """Start ``coro`` once a slot is free (this is where sources feel back-pressure)."""
        try:
            while self.full and not self._closing:
                self._freed.clear()
                await self._freed.wait()
        except BaseException:
            coro.close()
            raise
        self.spawn_nowait(coro, name=name)

    def spawn_nowait(self, coro: Coroutine[Any, Any, None], *, name: str) -> bool:
        """Start ``coro`` if a slot is free now; False (and ``coro`` closed) otherwise."""
        if self._closing or self.full:
            coro.close()
            return False
        task = asyncio.create_task(self._guard(coro), name=f"{self._name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._freed.set()

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task_crashed", task_set=self._name)

    async def close(self, grace_s: float) -> None:
        """Refuse new tasks, wait up to ``grace_s`` for running ones, cancel the rest."""
        self._closing = True
        self._freed.set()
        pending = set(self._tasks)
        if pending and grace_s > 0:
            _done, pending = await asyncio.wait(pending, timeout=grace_s)
        await cancel_and_wait(pending)
        if pending:
            log.warning("tasks_cancelled_at_shutdown", task_set=self._name, count=len(pending))
