"""A thread pool for sync python-mode handlers, with cheap hand-offs to and from the event loop.

A plain ``def handle`` must not run on the event loop (a slow one would stall ``/_/health``), so
each call crosses to a thread and back. ``loop.run_in_executor`` pays for a
``concurrent.futures.Future``, its chaining to an asyncio future and one self-pipe wake-up per
call: ~20-35 µs a call here, which halves python mode's throughput next to a bare aiohttp server.
This pool hands a call over through a ``SimpleQueue`` and returns results in batches: a worker
appends its result to a deque and wakes the loop only if no wake-up is already pending, and the
loop settles every finished call in one callback. Measured with 50 concurrent callers on the
development machine: ~3 µs a call (docs/benchmarks.md).

Threads are added only when calls wait and none has finished for `GROW_AFTER_S` (the threads
are blocked, in I/O or sleep), up to `max_threads`. A fast handler thus keeps one or two threads:
more runnable threads than that only fight the event loop for the GIL, which measured as a drop
from ~85% to ~40% of bare aiohttp's throughput when the pool grew to 32 busy threads. A call
cancelled on the loop side (its time limit passed) still runs to the end in its thread; its
result is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

__all__ = ["GROW_AFTER_S", "HandlerThreads"]

GROW_AFTER_S = 0.005

_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]
_Done = tuple["asyncio.Future[Any]", bool, Any]


class HandlerThreads:
    """Runs blocking callables off the event loop; `close` is idempotent."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, max_threads: int, eager: bool = False
    ) -> None:
        self._loop = loop
        self._max_threads = max(1, max_threads)
        # Eager: add a thread whenever a call finds none idle (for calls known to block).
        self._eager = eager
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._finished: collections.deque[_Done] = collections.deque()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._threads = 0
        self._idle = 0
        self._closed = False
        self._last_progress = time.monotonic()
        self._growth_check: asyncio.TimerHandle | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``fn(*args)`` in a thread; the returned future settles on the loop."""
        if self._closed:
            raise RuntimeError("handler threads are closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._jobs.put((future, fn, args))
        if self._threads == 0 or (
            self._eager and self._idle == 0 and self._threads < self._max_threads
        ):
            self._start_threads(1)
        elif self._idle == 0 and self._growth_check is None:
            self._growth_check = self._loop.call_later(GROW_AFTER_S, self._check_growth)
        return future

    def _check_growth(self) -> None:
        self._growth_check = None
        if self._closed:
            return
        waiting = self._jobs.qsize()
        if waiting == 0 or self._idle > 0:
            return
        if time.monotonic() - self._last_progress >= GROW_AFTER_S:
            self._start_threads(min(waiting, self._max_threads - self._threads))
        self._growth_check = self._loop.call_later(GROW_AFTER_S, self._check_growth)

    def _start_threads(self, count: int) -> None:
        for _ in range(max(0, count)):
            with self._lock:
                self._threads += 1
                number = self._threads
            threading.Thread(target=self._work, name=f"handler-{number}", daemon=True).start()

    def _work(self) -> None:
        lock = self._lock
        while True:
            with lock:
                self._idle += 1
            job = self._jobs.get()
            with lock:
                self._idle -= 1
            if job is None:
                return
            future, fn, args = job
            try:
                done: _Done = (future, True, fn(*args))
            except BaseException as exc:  # handed to the caller, not swallowed
                done = (future, False, exc)
            self._last_progress = time.monotonic()
            self._finished.append(done)
            with lock:
                if self._wake_pending:
                    continue
                self._wake_pending = True
            try:
                self._loop.call_soon_threadsafe(self._settle)
            except RuntimeError:  # the loop is closed: nobody waits for the result
                return

    def _settle(self) -> None:
        with self._lock:
            self._wake_pending = False
        finished = self._finished
        while finished:
            future, ok, value = finished.popleft()
            if future.done():  # cancelled by its time limit
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def close(self) -> None:
        """Let idle threads exit; busy ones finish their call first (they are daemons)."""
        if self._closed:
            return
        self._closed = True
        if self._growth_check is not None:
            self._growth_check.cancel()
            self._growth_check = None
        for _ in range(self._threads):
            self._jobs.put(None)
