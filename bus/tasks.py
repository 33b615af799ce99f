"""Cancel background tasks and wait until they have really ended.

On Python 3.11, ``asyncio.wait_for`` can swallow a cancellation that arrives just as the awaited
operation completes (fixed in 3.12). nats-py uses ``wait_for`` for its requests, so a task
cancelled while it was setting up a KV watch can carry on into the watch and wait there forever,
and whoever awaited the task hangs with it: a provider stopped right after it started needed
SIGKILL now and then. :func:`cancel_and_wait` cancels again each time a task is still running
after ``patience_s``, a bounded number of times, and collects every outcome so that nothing is
logged as "never retrieved".
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog

__all__ = ["cancel_and_wait"]

log = structlog.get_logger(__name__)


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, patience_s: float = 1.0, rounds: int = 10
) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again whatever outlives each round."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    for _ in range(rounds):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=patience_s)
    for task in pending:
        log.warning("task_ignores_cancel", task=task.get_name())
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: its outcome is the caller's business, not the log's
