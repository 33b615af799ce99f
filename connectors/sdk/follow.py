"""Follow the topic map: re-apply a source's subscriptions after each change, from one task.

Every source that subscribes by topic (Kafka topics, NATS subjects, SQS queues) must follow the
map as functions are deployed, updated and removed, without a restart. The map calls its listeners
synchronously; the work (re-subscribing, starting or stopping pollers) is async and can fail while
the upstream is away. A :class:`TopicFollower` turns the changes into calls of the source's
``apply`` from one task, one at a time (changes that arrive meanwhile fold into one more call),
and retries a failed call after a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from faasbus.bus import cancel_and_wait
from faasbus.connectors.sdk.topics import TopicMap

__all__ = ["TopicFollower"]

log = structlog.get_logger(__name__)

_RETRY_S = 1.0


class TopicFollower:
    """Calls ``apply`` after every change of ``topics`` until :meth:`close`."""

    def __init__(
        self, topics: TopicMap, apply: Callable[[], Awaitable[None]], *, name: str
    ) -> None:
        self._topics = topics
        self._apply = apply
        self._name = name
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Listen from now on (apply the current map yourself first)."""
        self._topics.on_change(self._changed.set)
        self._task = asyncio.create_task(self._follow(), name=f"{self._name}-topic-follower")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self._apply()
            except Exception as exc:  # the upstream is away: try again shortly
                log.warning("topic_follow_failed", source=self._name,
                            error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                await asyncio.sleep(_RETRY_S)
                self._changed.set()
