"""Per-call time limits for python mode without a timer per call.

``asyncio.timeout()`` schedules a ``TimerHandle`` on the loop's heap for every call and cancels
it afterwards; at 15-20k calls/s the heap pushes (a Python-level ``__lt__`` per comparison) are
~6% of a python-mode call. Here a call is dropped into a slot of a timing wheel (``tick_s``
wide: a set insert and a set discard) and one sweeper task cancels whatever is still in a slot
when its time comes. A limit therefore fires up to one tick late, which is nothing next to
limits counted in seconds.

The caller tells a timeout from any other cancellation by `Deadline.expired`, and clears the
cancellation it caused with ``Task.uncancel()``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from faasbus.watchdog.base import AsyncResource

__all__ = ["Deadline", "DeadlineWheel"]


class Deadline:
    """One armed call: the task to cancel and whether it was."""

    __slots__ = ("expired", "slot", "task")

    def __init__(self, task: asyncio.Task[Any], slot: int) -> None:
        self.task = task
        self.slot = slot
        self.expired = False


class DeadlineWheel(AsyncResource):
    """Cancels tasks that outlive their limit; an async context manager owning its sweeper."""

    def __init__(self, *, tick_s: float = 0.025) -> None:
        self._tick_s = tick_s
        self._slots: dict[int, set[Deadline]] = {}
        self._next_slot = 0
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._next_slot = int(self._loop.time() / self._tick_s)
        self._sweeper = asyncio.create_task(self._sweep(), name="deadline-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    def arm(self, limit_s: float) -> Deadline:
        """Cancel the current task if it still runs `limit_s` from now (until `disarm`)."""
        loop = self._loop
        task = asyncio.current_task()
        if loop is None or task is None:
            raise RuntimeError("DeadlineWheel used outside its context or a task")
        slot = int((loop.time() + limit_s) / self._tick_s) + 1
        deadline = Deadline(task, slot)
        bucket = self._slots.get(slot)
        if bucket is None:
            self._slots[slot] = {deadline}
        else:
            bucket.add(deadline)
        return deadline

    def disarm(self, deadline: Deadline) -> None:
        bucket = self._slots.get(deadline.slot)
        if bucket is not None:
            bucket.discard(deadline)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._tick_s)
            now_slot = int(loop.time() / self._tick_s)
            while self._next_slot <= now_slot:
                bucket = self._slots.pop(self._next_slot, None)
                self._next_slot += 1
                for deadline in bucket or ():
                    deadline.expired = True
                    deadline.task.cancel()
