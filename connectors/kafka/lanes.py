"""One lane per assigned partition: hands its records off in offset order, tracks what to commit.

A lane takes the records the reader fetched for its partition and starts their hand-offs in
offset order, at most ``window`` at once (1: the next record's hand-off starts only once the
bus acked every invocation of the previous one). ``committable`` is the offset after the longest
run of records, from the start, whose hand-offs all finished: the only offset that may be
committed, whatever order later hand-offs finish in. Lanes of different partitions run
concurrently; a slow partition does not hold up the others.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

__all__ = ["Lane"]

log = structlog.get_logger(__name__)

HandOff = Callable[[Any], Coroutine[Any, Any, object]]


class Lane:
    """The hand-offs of one partition; :meth:`feed` records, :meth:`drain` on revoke/shutdown."""

    def __init__(
        self, name: str, hand_off: HandOff, *, window: int, freed: Callable[[int], None]
    ) -> None:
        self.name = name
        self.committable: int | None = None
        self._hand_off = hand_off
        self._window = window
        self._freed = freed
        self._backlog: collections.deque[Any] = collections.deque()
        self._inflight: collections.deque[tuple[int, asyncio.Task[object]]] = collections.deque()
        self._fed = asyncio.Event()
        self._worker = asyncio.create_task(self._run(), name=f"kafka-lane:{name}")

    def __len__(self) -> int:
        return len(self._backlog)

    def feed(self, records: list[Any]) -> None:
        self._backlog.extend(records)
        self._fed.set()

    async def _retire_oldest(self) -> None:
        offset, task = self._inflight[0]
        await asyncio.shield(task)
        self._inflight.popleft()
        self.committable = offset + 1

    def _retire_finished(self) -> None:
        while self._inflight and self._inflight[0][1].done():
            offset, task = self._inflight[0]
            if task.cancelled() or task.exception() is not None:
                return  # never committed past: the record is read again
            self._inflight.popleft()
            self.committable = offset + 1

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception:  # a hand-off retries until acked: this is a bug, not the bus
            log.exception("kafka_lane_crashed", partition=self.name)
            raise

    async def _loop(self) -> None:
        while True:
            self._retire_finished()
            if not self._backlog:
                if self._inflight:
                    await self._retire_oldest()
                else:
                    self._fed.clear()
                    await self._fed.wait()
                continue
            while len(self._inflight) >= self._window:
                await self._retire_oldest()
            record = self._backlog.popleft()
            self._freed(1)
            task = asyncio.create_task(self._hand_off(record), name=f"kafka-handoff:{self.name}")
            self._inflight.append((record.offset, task))

    async def drain(self, grace_s: float) -> None:
        """Start nothing new; let started hand-offs finish (up to ``grace_s``), then stop.

        Records not started are dropped: the partition's next reader fetches them again from
        the committed offset."""
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._worker
        self._freed(len(self._backlog))
        self._backlog.clear()
        tasks = [task for _, task in self._inflight]
        if tasks:
            pending = set(tasks)
            if grace_s > 0:
                _done, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if pending:
                log.warning("kafka_handoffs_cancelled", partition=self.name, count=len(pending))
        self._retire_finished()
