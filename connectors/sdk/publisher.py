"""The publisher: one source event → one invocation per mapped function on FAAS_INVOKE.

:meth:`Publisher.hand_off` returns only once JetStream has acked every invocation of the event:
that is the moment a source may acknowledge it (commit the Kafka offset, delete the SQS message,
answer a NATS request), because from then on the platform owns the work (ARCHITECTURE.md
section 2). A failed publish is retried with exponential back-off and jitter for as long as it
takes — a connector never gives up on the bus. An outage is logged once when it starts, every
5 s while it lasts and once when publishing works again, however many hand-offs are waiting.
Retries reuse the invocation's ``Nats-Msg-Id`` (:mod:`faasbus.connectors.sdk.events`), so a
publish that reached the stream before its ack was lost is dropped as a duplicate, not run twice.

Invocations carry ``X-Topic`` and ``X-Connector`` (``<name>-connector``) plus the source's own
headers (forwarded to the function), source ``<name>`` and the topic in the envelope. Bodies too
large for one NATS message go to the object store once per event and are referenced from each
invocation. After the ack a ``queued`` call record is written (unless a record exists already, or
``FAASBUS_CONNECTOR_RECORD_CALLS=false``), so ``/system/calls/{id}`` knows the call at once; it is
written after the publish, not before, so a connector killed in between leaves no record of a
call that never existed.

Sources that must keep many events of one ordered stream in flight (Kafka partitions) use the
two halves of a hand-off instead: :meth:`Publisher.send` publishes an event's invocations
without waiting for their acks (:mod:`faasbus.connectors.sdk.acks`), and
:meth:`Publisher.confirm` waits for the acks, re-publishing (same ``Nats-Msg-Id``, until acked)
any whose publish failed or timed out. Events sent one after the other by one task reach
JetStream in that order (one connection, one write buffer). Confirmed events get their
``queued`` call records written in the background (:mod:`faasbus.connectors.sdk.recorder`,
drained when the publisher closes), so a record write never holds up the next publish. A source
that acknowledges events in bulk (Kafka's offset commit) first awaits
:meth:`Publisher.records_written`, so an acknowledged event's calls have their records.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Self, TypeVar

import nats.js.errors
import structlog
from nats.js.api import PubAck

from faasbus.bus import Bus, CallRecord, CallStore, Invocation, declare_bus, names
from faasbus.connectors.sdk.acks import AckFutures
from faasbus.connectors.sdk.events import FunctionRef, SourceEvent, invocation_ids
from faasbus.connectors.sdk.metrics import UNROUTED, ConnectorMetrics
from faasbus.connectors.sdk.recorder import Recorder
from faasbus.connectors.sdk.results import wait_for_result
from faasbus.connectors.sdk.settings import ConnectorSettings
from faasbus.connectors.sdk.tasks import TaskSet
from faasbus.connectors.sdk.topics import TopicMap

__all__ = ["Handoff", "Publisher", "Sent"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Room left for headers when deciding whether a body fits in one NATS message (as the gateway).
_HEADER_ROOM = 16 * 1024
_PAYLOAD_NAMESPACE = uuid.UUID("0b7e4c52-8f0a-5d3e-a1c4-3e9b2f6d7a80")
_MAX_FOLLOWERS = 1000
_LOGGED_BODY = 1024
# Call records waiting to be written in the background (beyond that, confirm() writes them).
_MAX_RECORD_WRITES = 4096
# How long closing the publisher waits for background call-record writes.
_RECORD_GRACE_S = 5.0


class _Outage:
    """One log line when publishing starts failing, one every 5 s, one when it recovers."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.logged_at = 0.0
        self.failures = 0
        self.recovered_at = float("-inf")  # a publish sent before failing belongs to that outage

    def failed(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        self.failures += 1
        error = f"{type(exc).__name__}: {exc}"
        if self.since is None:
            self.since = self.logged_at = now
            log.warning("bus_publish_failing", what=what, error=error)
        elif now - self.logged_at >= 5.0:
            self.logged_at = now
            log.warning("bus_publish_still_failing", failures=self.failures,
                        for_s=round(now - self.since, 1), error=error)  # fmt: skip

    def succeeded(self) -> None:
        if self.since is not None:
            self.recovered_at = time.monotonic()
            log.info("bus_publish_recovered", failures=self.failures,
                     outage_s=round(self.recovered_at - self.since, 3))  # fmt: skip
            self.since = None
            self.failures = 0


@dataclass(frozen=True)
class Handoff:
    """What one event became: the invocations JetStream acked (none if nothing subscribes)."""

    event: SourceEvent
    invocations: tuple[Invocation, ...]
    duplicates: int = 0
    republished: int = 0  # invocations whose first publish failed and were published again

    @property
    def routed(self) -> bool:
        return bool(self.invocations)


@dataclass(frozen=True)
class Sent:
    """An event whose invocations were sent (:meth:`Publisher.send`), acks not awaited yet."""

    event: SourceEvent
    invocations: tuple[Invocation, ...]
    acks: tuple[asyncio.Future[PubAck], ...]
    deadline: float  # loop time after which an unanswered publish counts as failed
    sent_at: float = 0.0  # time.monotonic() when sent

    def discard(self) -> None:
        """Give up waiting: cancel unanswered acks, consume the errors of failed ones."""
        for ack in self.acks:
            if not ack.done():
                ack.cancel()
            elif not ack.cancelled():
                ack.exception()


class Publisher:
    """Turns events into acked invocations; an async context manager (owns follower tasks)."""

    def __init__(
        self,
        *,
        connector: str,
        bus: Bus,
        topics: TopicMap,
        calls: CallStore,
        metrics: ConnectorMetrics,
        settings: ConnectorSettings,
    ) -> None:
        self.connector = connector
        self.header_value = f"{connector}-connector"
        self._bus = bus
        self._topics = topics
        self._calls = calls
        self._metrics = metrics
        self._settings = settings
        self._followers = TaskSet(f"{connector}-responses", limit=_MAX_FOLLOWERS)
        self._acks = AckFutures(bus.nc)
        self._recorder = Recorder(
            self._acks, limit=_MAX_RECORD_WRITES, timeout_s=settings.publish_timeout_s
        )
        self._outage = _Outage()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._recorder.close(min(_RECORD_GRACE_S, self._settings.shutdown_grace_s))
        await self._acks.close()
        await self._followers.close(0)

    def invocations(self, event: SourceEvent, targets: Sequence[FunctionRef]) -> list[Invocation]:
        """The invocations of ``event`` for ``targets`` (ids derived, not yet published)."""
        headers = (("X-Topic", event.topic), ("X-Connector", self.header_value), *event.headers)
        out = []
        for target in targets:
            msg_id, call_id = invocation_ids(self.connector, event.event_id, target)
            out.append(
                Invocation(
                    call_id=call_id,
                    namespace=target.namespace,
                    function=target.name,
                    body=event.body,
                    content_type=event.content_type or self._settings.content_type,
                    source=self.connector,
                    topic=event.topic,
                    msg_id=msg_id,
                    headers=Invocation.forwardable(headers),
                )
            )
        return out

    async def hand_off(
        self, event: SourceEvent, *, targets: Sequence[FunctionRef] | None = None
    ) -> Handoff:
        """Publish one invocation per target (default: the topic map's functions for the
        event's topic) and return once JetStream acked all of them. Retries forever; cancel the
        caller to give up (then the source must not acknowledge the event)."""
        if targets is None:
            targets = self._topics.functions_for(event.topic)
        label = event.topic if targets else UNROUTED
        self._metrics.events.labels(self.connector, label).inc()
        if not targets:
            log.debug("event_unrouted", topic=event.topic)
            return Handoff(event, ())
        invocations = self.invocations(event, targets)
        if len(event.body) > self._bus.max_payload - _HEADER_ROOM:
            ref = await self._stage_body(event)
            invocations = [replace(inv, body=b"", payload_ref=ref) for inv in invocations]
        acks = await asyncio.gather(*(self._publish(inv) for inv in invocations))
        handoff = Handoff(event, tuple(invocations), duplicates=sum(acks))
        if self._settings.print_response:
            for inv in invocations:
                self._followers.spawn_nowait(self._print_response(inv), name=inv.call_id)
        return handoff

    async def send(
        self, event: SourceEvent, *, targets: Sequence[FunctionRef] | None = None
    ) -> Sent:
        """Route ``event`` and publish its invocations without waiting for JetStream's acks.

        Returns once every publish is in the connection's write buffer (a large body is stored
        first, retried until done): publishes sent by consecutive calls from one task reach the
        server in that order. Follow with :meth:`confirm`; a ``Sent`` given up instead must be
        :meth:`Sent.discard`-ed (its event must then not be acknowledged)."""
        if targets is None:
            targets = self._topics.functions_for(event.topic)
        label = event.topic if targets else UNROUTED
        self._metrics.events.labels(self.connector, label).inc()
        loop = asyncio.get_running_loop()
        if not targets:
            log.debug("event_unrouted", topic=event.topic)
            return Sent(event, (), (), 0.0)
        invocations = self.invocations(event, targets)
        if len(event.body) > self._bus.max_payload - _HEADER_ROOM:
            ref = await self._stage_body(event)
            invocations = [replace(inv, body=b"", payload_ref=ref) for inv in invocations]
        acks: list[asyncio.Future[PubAck]] = []
        try:
            for inv in invocations:
                try:
                    acks.append(await self._acks.publish(inv.subject, inv.body, inv.nats_headers()))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # e.g. closed or reconnecting: confirm() publishes again
                    failed: asyncio.Future[PubAck] = loop.create_future()
                    failed.set_exception(exc)
                    acks.append(failed)
        except BaseException:
            Sent(event, (), tuple(acks), 0.0).discard()
            raise
        deadline = loop.time() + self._settings.publish_timeout_s
        return Sent(event, tuple(invocations), tuple(acks), deadline, time.monotonic())

    async def confirm(self, sent: Sent) -> Handoff:
        """Wait for the acks of ``sent``; publish again, in order and until acked, each one that
        failed or did not come within ``FAASBUS_PUBLISH_TIMEOUT``. When this returns, JetStream
        holds every invocation of the event: the source may acknowledge it. Queued call records
        are written in the background."""
        if not sent.invocations:
            return Handoff(sent.event, ())
        duplicates = republished = 0
        for inv, future in zip(sent.invocations, sent.acks, strict=True):
            ack = await self._settle(inv, future, sent)
            if ack is None:
                republished += 1
                ack = await self._republish(inv, future)
            self._metrics.invocations.labels(
                self.connector, f"{inv.function}.{inv.namespace}"
            ).inc()
            if ack.duplicate:
                duplicates += 1
            elif self._settings.record_calls:
                record = self._queued(inv, ack.seq)
                if not self._recorder.add(record):
                    await self._create_record(record)  # too many waiting: back-pressure
        if self._settings.print_response:
            for inv in sent.invocations:
                self._followers.spawn_nowait(self._print_response(inv), name=inv.call_id)
        return Handoff(sent.event, sent.invocations, duplicates=duplicates,
                       republished=republished)  # fmt: skip

    async def records_written(self) -> None:
        """Wait until the queued call records of every invocation confirmed so far are written
        (or given up: a record is best effort). Call before acknowledging events in bulk, so a
        crash right after cannot leave an acknowledged event's calls without their records."""
        timeout_s = 2 * self._settings.publish_timeout_s
        if not await self._recorder.written(timeout_s):
            log.info("call_records_late", waited_s=timeout_s, pending=len(self._recorder))

    async def _settle(
        self, inv: Invocation, future: asyncio.Future[PubAck], sent: Sent
    ) -> PubAck | None:
        """The ack of a sent publish, or None (error, timeout) after counting the failure."""
        if not future.done():
            remaining = sent.deadline - asyncio.get_running_loop().time()
            if remaining > 0:
                await asyncio.wait((future,), timeout=remaining)
        if future.done() and not future.cancelled():
            error = future.exception()
            if error is None:
                self._outage.succeeded()
                return future.result()
        else:
            future.cancel()
            error = TimeoutError(f"no ack within {self._settings.publish_timeout_s}s")
        self._metrics.publish_retries.labels(self.connector).inc()
        if sent.sent_at >= self._outage.recovered_at:
            self._outage.failed(f"publish {inv.subject}", error)
        # else: sent during an outage already logged as over; its republish tells if it is not
        return None

    async def _republish(self, inv: Invocation, failed: asyncio.Future[PubAck]) -> PubAck:
        error = None if failed.cancelled() else failed.exception()
        if isinstance(error, nats.js.errors.NoStreamResponseError):
            try:
                await declare_bus(self._bus.js, self._bus.settings)
            except Exception as declare_exc:
                log.debug("declare_bus_failed", error=str(declare_exc))
        await asyncio.sleep(self._settings.publish_retry_min_s * random.uniform(0.5, 1.0))  # noqa: S311
        headers = inv.nats_headers()
        return await self._until_done(
            f"publish {inv.subject}",
            lambda: self._bus.js.publish(
                inv.subject, inv.body, headers=headers, timeout=self._settings.publish_timeout_s
            ),
        )

    async def _publish(self, inv: Invocation) -> bool:
        """Publish until acked; True when JetStream dropped it as a duplicate."""
        headers = inv.nats_headers()
        ack = await self._until_done(
            f"publish {inv.subject}",
            lambda: self._bus.js.publish(
                inv.subject, inv.body, headers=headers, timeout=self._settings.publish_timeout_s
            ),
        )
        self._metrics.invocations.labels(self.connector, f"{inv.function}.{inv.namespace}").inc()
        if not ack.duplicate and self._settings.record_calls:
            await self._record_queued(inv, ack.seq)
        return bool(ack.duplicate)

    def _queued(self, inv: Invocation, seq: int) -> CallRecord:
        return CallRecord(
            call_id=inv.call_id, function=inv.function, namespace=inv.namespace,
            source=self.connector, topic=inv.topic, queued_at=inv.enqueued_at_ns / 1e9,
            stream_seq=seq,
        )  # fmt: skip

    async def _record_queued(self, inv: Invocation, seq: int) -> None:
        await self._create_record(self._queued(inv, seq))

    async def _create_record(self, record: CallRecord) -> None:
        try:
            await self._calls.create(record)
        except nats.js.errors.KeyWrongLastSequenceError:
            pass  # a worker already picked the call up (its record is newer than ours)
        except Exception as exc:  # best effort: the worker writes the record when it runs it
            log.info("call_record_not_written", call_id=record.call_id, error=str(exc))

    async def _stage_body(self, event: SourceEvent) -> str:
        ref = "payloads/" + str(
            uuid.uuid5(_PAYLOAD_NAMESPACE, f"{self.connector}:{event.event_id}")
        )

        async def put() -> None:
            store = await self._bus.js.object_store(names.PAYLOADS_BUCKET)
            await store.put(ref, event.body)

        await self._until_done(f"store {ref}", put)
        return ref

    async def _until_done(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        delay = self._settings.publish_retry_min_s
        while True:
            try:
                result = await operation()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._metrics.publish_retries.labels(self.connector).inc()
                self._outage.failed(what, exc)
                if isinstance(exc, nats.js.errors.NoStreamResponseError):
                    # The stream is gone (a fresh server, a deleted stream): declare it again.
                    try:
                        await declare_bus(self._bus.js, self._bus.settings)
                    except Exception as declare_exc:
                        log.debug("declare_bus_failed", error=str(declare_exc))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
                delay = min(delay * 2, self._settings.publish_retry_max_s)
            else:
                self._outage.succeeded()
                return result

    async def _print_response(self, inv: Invocation) -> None:
        result = await wait_for_result(
            self._calls, inv.call_id, timeout_s=self._settings.upstream_timeout_s
        )
        fields: dict[str, object] = {"function": inv.function, "namespace": inv.namespace,
                                     "call_id": inv.call_id, "topic": inv.topic}  # fmt: skip
        if result is None:
            log.info("function_response_timeout", **fields)
            return
        fields.update(state=result.record.state.value, status=result.record.status_code,
                      duration_s=result.record.duration_s)  # fmt: skip
        if self._settings.print_response_body:
            fields["body"] = result.body[:_LOGGED_BODY].decode(errors="replace")
        log.info("function_response", **fields)
