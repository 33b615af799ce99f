"""One lane per assigned partition: publishes its records in offset order, tracks what to commit.

A lane is one task. It takes the records the reader fetched for its partition and, in offset
order, *sends* each record's invocations (:meth:`Publisher.send`: into the NATS connection's
write buffer, acks not awaited) while fewer than ``window`` records are unconfirmed, and
*confirms* them oldest first (:meth:`Publisher.confirm`: JetStream acked every invocation).
Publishes of one connection reach the server in the order they were written, so on the normal
path a partition's invocations are stored in offset order whatever the window.

When a publish fails (an error ack, no ack within ``FAASBUS_PUBLISH_TIMEOUT``, a dropped
connection), the lane stops sending: it confirms the records already sent, oldest first, each
failed publish republished (same ``Nats-Msg-Id``) until acked, and only once all of them are
confirmed does it send again. Nothing is lost (nothing past an unconfirmed record is ever
committed) and nothing runs twice (a republished invocation that JetStream had stored after all
is dropped as a duplicate). What a failure can cost is order: the failed record's invocation can
land after those of up to ``window - 1`` later records that were sent before the failure showed.
With ``window`` 1 a record is sent only once the previous one is confirmed: strict offset order
even across failures, at one round trip per record.

``committable`` is the offset after the last confirmed record: confirmations happen in offset
order, so every record before it is confirmed too — the only offset that may be committed.
Lanes of different partitions run concurrently; a slow partition does not hold up the others.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from faasbus.connectors.sdk import Handoff, Sent, cancel_and_wait

__all__ = ["Lane"]

log = structlog.get_logger(__name__)

Send = Callable[[Any], Coroutine[Any, Any, Sent]]
Confirm = Callable[[Sent], Coroutine[Any, Any, Handoff]]


class Lane:
    """The hand-offs of one partition; :meth:`feed` records, :meth:`drain` on revoke/shutdown."""

    def __init__(
        self,
        name: str,
        send: Send,
        confirm: Confirm,
        *,
        window: int,
        freed: Callable[[int], None],
    ) -> None:
        self.name = name
        self.committable: int | None = None
        self._send = send
        self._confirm = confirm
        self._window = window
        self._freed = freed
        self._backlog: collections.deque[Any] = collections.deque()
        self._inflight: collections.deque[tuple[int, Sent]] = collections.deque()
        self._recovering = False  # a publish failed: confirm everything sent before sending more
        self._fed = asyncio.Event()
        self._worker = asyncio.create_task(self._run(), name=f"kafka-lane:{name}")

    def __len__(self) -> int:
        return len(self._backlog)

    def feed(self, records: list[Any]) -> None:
        self._backlog.extend(records)
        self._fed.set()

    async def _confirm_oldest(self) -> None:
        offset, sent = self._inflight[0]
        handoff = await self._confirm(sent)
        self._inflight.popleft()
        self.committable = offset + 1
        if handoff.republished and not self._recovering:
            self._recovering = bool(self._inflight)
            log.info("kafka_lane_republished", partition=self.name, offset=offset,
                     count=handoff.republished, unconfirmed=len(self._inflight))  # fmt: skip
        if not self._inflight:
            self._recovering = False

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception:  # confirm retries until acked: this is a bug, not the bus
            log.exception("kafka_lane_crashed", partition=self.name)
            raise

    async def _loop(self) -> None:
        backlog, inflight = self._backlog, self._inflight
        while True:
            if backlog and len(inflight) < self._window and not self._recovering:
                record = backlog.popleft()
                self._freed(1)
                # Popped before sending: if this is cancelled half-way, the record is neither
                # confirmed nor committed, and is read again (its publishes dedupe).
                inflight.append((record.offset, await self._send(record)))
            elif inflight:
                await self._confirm_oldest()
            else:
                self._fed.clear()
                await self._fed.wait()

    async def drain(self, grace_s: float) -> None:
        """Send nothing new; confirm what was sent (up to ``grace_s``), then stop.

        Records not sent are dropped, and so are sent records not confirmed in time: the
        partition's next reader fetches them again from the committed offset."""
        await cancel_and_wait([self._worker])
        self._freed(len(self._backlog))
        self._backlog.clear()
        if not self._inflight:
            return
        try:
            if grace_s > 0:
                await asyncio.wait_for(self._confirm_all(), grace_s)
        except TimeoutError:
            pass
        finally:
            if self._inflight:
                log.warning("kafka_handoffs_unconfirmed", partition=self.name,
                            count=len(self._inflight))  # fmt: skip
            for _, sent in self._inflight:
                sent.discard()
            self._inflight.clear()

    async def _confirm_all(self) -> None:
        while self._inflight:
            await self._confirm_oldest()
