"""Queued call records written in the background, pipelined on one task.

A connector that keeps many invocations in flight (Kafka) writes one ``queued`` call record per
invocation. Written one by one (a KV create, a round trip each, in a task each) they cost as
much as the invocations themselves and, awaited, would hold up the next publish. The
:class:`Recorder` instead queues them and writes them from one task with JetStream publishes
whose acks are awaited later (:mod:`.acks`): up to ``_WINDOW`` unanswered at once, each a create
(``Nats-Expected-Last-Subject-Sequence: 0`` on the KV bucket's subject, the KV protocol's
create), so a record the queue worker already wrote is left alone. A record is best effort, as
the SDK's own write: the worker writes the record when it runs the call, so a failed or lost
write is logged (counted, at most a line every 5 s), not retried.

:meth:`Recorder.add` refuses (returns False) when ``limit`` records wait: the caller then writes
the record itself, which is the back-pressure. :meth:`Recorder.close` writes what waits, within
a grace period. :meth:`Recorder.written` waits until every record added so far is settled
(written, refused as already there, or given up): a source that acknowledges events in bulk
(Kafka's offset commit) waits for it first, so an acknowledged event's calls have their records.
"""

from __future__ import annotations

import asyncio
import collections
import time

import nats.js.errors
import structlog
from nats.js.api import PubAck

from faasbus.bus import CallRecord, cancel_and_wait, names
from faasbus.connectors.sdk.acks import AckFutures

__all__ = ["Recorder"]

log = structlog.get_logger(__name__)

_WINDOW = 256
# JetStream's "wrong last sequence" errors: the call already has a record (nats-py's KV uses
# the same codes for KeyWrongLastSequenceError).
_EXISTS = frozenset({10071, 10164})


class Recorder:
    """Writes call records from one background task (started on first use)."""

    def __init__(self, acks: AckFutures, *, limit: int, timeout_s: float) -> None:
        self._acks = acks
        self._limit = limit
        self._timeout_s = timeout_s
        self._subject = f"$KV.{names.CALLS_BUCKET}."
        self._waiting: collections.deque[CallRecord] = collections.deque()
        self._sent: collections.deque[tuple[float, str, asyncio.Future[PubAck]]] = (
            collections.deque()
        )
        self._added = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._failures = 0  # not logged yet
        self._logged_at = 0.0
        self._added_total = 0
        self._settled_total = 0  # records settle in the order they were added
        self._progress = asyncio.Event()

    def __len__(self) -> int:
        return len(self._waiting) + len(self._sent)

    def add(self, record: CallRecord) -> bool:
        """Queue ``record``; False when closed or ``limit`` records wait (write it yourself)."""
        if self._closed or len(self) >= self._limit:
            return False
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="call-record-writer")
        self._waiting.append(record)
        self._added_total += 1
        self._added.set()
        return True

    async def written(self, timeout_s: float) -> bool:
        """Wait until every record added before this call is settled; False on timeout."""
        mark = self._added_total
        try:
            async with asyncio.timeout(timeout_s):
                while self._settled_total < mark:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    def _settle(self, count: int = 1) -> None:
        self._settled_total += count
        self._progress.set()

    async def close(self, grace_s: float) -> None:
        """Accept no more; write what waits within ``grace_s``; cancel the rest."""
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            return
        if grace_s > 0:
            await self.written(grace_s)
        await cancel_and_wait([task])
        dropped = len(self)
        for _, _, future in self._sent:
            future.cancel()
        self._sent.clear()
        self._waiting.clear()
        # Written or dropped, every record is settled now: whoever waits in written() goes on.
        self._settle(self._added_total - self._settled_total)
        if dropped:
            log.warning("call_records_dropped_at_close", count=dropped)
        if self._failures:
            log.info("call_records_not_written", count=self._failures)

    def _failed(self, call_id: str, error: str) -> None:
        """One log line for the first failure, then at most one every 5 s with the count (an
        outage of the bus fails every write: a line each would flood the log)."""
        self._failures += 1
        now = time.monotonic()
        if now - self._logged_at >= 5.0:
            log.info("call_records_not_written", count=self._failures, call_id=call_id,
                     error=error)  # fmt: skip
            self._logged_at = now
            self._failures = 0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        waiting, sent = self._waiting, self._sent
        while True:
            if waiting and len(sent) < _WINDOW:
                record = waiting.popleft()
                try:
                    future = await self._acks.publish(
                        self._subject + record.call_id, record.to_json(),
                        {"Nats-Expected-Last-Subject-Sequence": "0"},
                    )  # fmt: skip
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._failed(record.call_id, f"{type(exc).__name__}: {exc}")
                    self._settle()
                    continue
                sent.append((loop.time() + self._timeout_s, record.call_id, future))
            elif sent:
                deadline, call_id, future = sent[0]
                if not future.done():
                    await asyncio.wait((future,), timeout=max(deadline - loop.time(), 0))
                sent.popleft()
                if error := _failure(future):
                    self._failed(call_id, error)
                self._settle()
            else:
                self._added.clear()
                await self._added.wait()


def _failure(future: asyncio.Future[PubAck]) -> str:
    """Why the write of a settled (or given up) record failed; "" if it did not."""
    if not future.done():
        future.cancel()
        return "no ack"
    if future.cancelled():
        return ""
    error = future.exception()
    if error is None:
        return ""
    if isinstance(error, nats.js.errors.APIError) and error.err_code in _EXISTS:
        return ""  # a worker already picked the call up (its record is newer than ours)
    return f"{type(error).__name__}: {error}"
