"""The Kafka source: a consumer group member reading the topics the topic map names.

Subscription: every topic of the topic map that is a legal Kafka topic name (intersected with
``topics`` when set), followed as functions come and go — a change re-subscribes the consumer,
which rebalances the group; no restart. Several connector processes with one ``group`` share the
partitions; when one dies, the group coordinator gives its partitions to the others after the
session timeout.

Delivery, per partition, at least once and run once:

- records are fetched in batches and fed to one :class:`~.lanes.Lane` per partition; a lane
  publishes its records' invocations in offset order, pipelined: up to
  ``FAASBUS_KAFKA_PARTITION_WINDOW`` records (default 32) sent and not yet acked by JetStream.
  Order: publishes on one NATS connection reach the server in the order sent, so a partition's
  invocations are stored in offset order. The one exception is a failed publish (an error ack,
  no ack in time, a dropped connection): the lane then stops sending, republishes the failed
  invocations in offset order until acked (same ``Nats-Msg-Id``: one JetStream had stored after
  all is dropped as a duplicate) and sends new records only once everything sent is acked — so
  the failed record's invocation may be stored after those of at most ``window - 1`` later
  records of its partition, never after any later one. Window 1 sends a record only once the
  previous one is acked: strict offset order even across failures, at one round trip per
  record. Lanes run concurrently; fetched records wait in them up to 8 times
  ``FAASBUS_CONNECTOR_MAX_INFLIGHT`` before fetching pauses;
- an offset is committed (manual commit, auto-commit off) only after every invocation of that
  record and of all earlier records of its partition was acked by the bus: every
  ``FAASBUS_KAFKA_COMMIT_INTERVAL`` (its own task), when partitions are revoked (after the
  lane's sent records are acked, within ``FAASBUS_SHUTDOWN_GRACE``), and on shutdown; and
  only once the ``queued`` call records of those invocations are written (the publisher writes
  them in the background; a write that fails or takes over twice ``FAASBUS_PUBLISH_TIMEOUT``
  is logged and does not hold the commit up, as the worker writes the record when it runs);
- a record read again (a crash before the commit, a rebalance) gives the same ``Nats-Msg-Id`` and
  call id (:mod:`.records`), so it is dropped as a duplicate instead of running twice.

Nothing here depends on broker features beyond consumer groups and offset commits, so it works
against Kafka, Redpanda and tansu alike (no idempotent producer, no transactions).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterable
from typing import Any, Self

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

from faasbus.connectors.kafka.lanes import Lane
from faasbus.connectors.kafka.records import record_event
from faasbus.connectors.kafka.settings import KafkaSettings, is_kafka_topic
from faasbus.connectors.sdk import (
    ConnectorContext,
    Sent,
    SourceEvent,
    TopicFollower,
    cancel_and_wait,
)

__all__ = ["KafkaSource"]

log = structlog.get_logger(__name__)

# Topics other connectors own: never subscribed to in Kafka.
_FOREIGN_TOPICS = frozenset({"cron-function"})
_POLL_MS = 200
_MAX_RECORDS = 500
# How long a fetch waits at the broker for new records (Kafka answers as soon as some arrive).
_FETCH_WAIT_MS = 20


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._source.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._source.partitions_assigned(set(assigned))


class KafkaSource:
    """An async context manager: joins the group on enter; commits and leaves on exit."""

    def __init__(self, ctx: ConnectorContext, settings: KafkaSettings) -> None:
        self._ctx = ctx
        self._settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._listener = _Rebalance(self)
        self._subscribed: frozenset[str] = frozenset()
        self._follower = TopicFollower(ctx.topics, self._follow_once, name="kafka")
        self._has_topics = asyncio.Event()
        self._lanes: dict[TopicPartition, Lane] = {}
        self._buffered = 0  # records fetched, not yet started
        self._buffer_limit = max(ctx.settings.max_inflight * 8, _MAX_RECORDS)
        self._room = asyncio.Event()
        self._room.set()
        self._done: dict[TopicPartition, int] = {}  # next offset to commit
        self._committed: dict[TopicPartition, int] = {}
        self._last_commit = 0.0
        self._stopping = False
        self._reader: asyncio.Task[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self._refused: set[str] = set()
        self._joined = asyncio.Event()

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        self._consumer = await self._start_consumer()
        try:
            await self._follow_once()
            self._follower.start()
            self._reader = asyncio.create_task(self._read(), name="kafka-reader")
            self._committer = asyncio.create_task(
                self._commit_periodically(), name="kafka-committer"
            )
            if self._subscribed:
                # Ready once the group gave this member its share (bounded: a dead member's
                # partitions may wait for its session to expire; reading starts regardless).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._joined.wait(), self._settings.session_timeout_s)
        except BaseException:
            await self.__aexit__()
            raise
        log.info(
            "kafka_source_started", brokers=list(self._settings.broker_hosts),
            group=self._settings.group, topics=sorted(self._subscribed),
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._follower.close()
        # Stop intake, let started hand-offs finish within the grace period, commit, leave.
        self._stopping = True
        await cancel_and_wait(task for task in (self._reader, self._committer) if task is not None)
        self._reader = self._committer = None
        await self._drain(set(self._lanes), self._ctx.settings.shutdown_grace_s)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await self._commit(force=True, consumer=consumer)
            with contextlib.suppress(Exception):
                await consumer.stop()  # leaves the group: the others take over at once

    def _new_consumer(self) -> AIOKafkaConsumer:
        s = self._settings
        ssl_context: ssl.SSLContext | None = None
        if s.tls:
            ssl_context = create_ssl_context(
                cafile=s.ca_file or None, certfile=s.cert_file or None, keyfile=s.key_file or None
            )
        sasl: dict[str, Any] = {}
        if s.sasl_mechanism:
            sasl = {"sasl_mechanism": s.sasl_mechanism, "sasl_plain_username": s.sasl_username,
                    "sasl_plain_password": s.sasl_password}  # fmt: skip
        session_ms = int(s.session_timeout_s * 1000)
        return AIOKafkaConsumer(
            bootstrap_servers=list(s.broker_hosts),
            client_id=f"faasbus-kafka-connector-{s.group}",
            group_id=s.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if s.initial_offset == "oldest" else "latest",
            max_partition_fetch_bytes=s.max_bytes,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 5, 100),
            metadata_max_age_ms=int(s.metadata_max_age_s * 1000),
            fetch_max_wait_ms=_FETCH_WAIT_MS,
            security_protocol=s.security_protocol,
            ssl_context=ssl_context,
            **sasl,
        )

    async def _start_consumer(self) -> AIOKafkaConsumer:
        """A started consumer, however long the brokers take to answer (the runner may stop us)."""
        delay = 0.5
        while True:
            consumer = self._new_consumer()
            try:
                await consumer.start()
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                log.warning("kafka_unavailable", brokers=list(self._settings.broker_hosts),
                            error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                return consumer

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the Kafka consumer is not started")
        return self._consumer

    # ------------------------------------------------------------ subscription

    def _wanted(self) -> frozenset[str]:
        only = set(self._settings.common.topics)
        wanted: set[str] = set()
        for topic in self._ctx.topics.topics():
            if topic in _FOREIGN_TOPICS or (only and topic not in only):
                continue
            if is_kafka_topic(topic):
                wanted.add(topic)
            elif topic not in self._refused:
                self._refused.add(topic)
                log.warning("kafka_topic_name_invalid", topic=topic)
        return frozenset(wanted)

    async def _follow_once(self) -> None:
        wanted = self._wanted()
        if wanted == self._subscribed:
            return
        # Commit what is handed off before the rebalance the new subscription starts.
        await self._commit(force=True)
        if wanted:
            self.consumer.subscribe(topics=sorted(wanted), listener=self._listener)
            self._has_topics.set()
        else:
            await self._drain(set(self._lanes), self._ctx.settings.shutdown_grace_s)
            await self._commit(force=True)
            self.consumer.unsubscribe()
            self._has_topics.clear()
        log.info("kafka_subscribed", topics=sorted(wanted),
                 added=sorted(wanted - self._subscribed),
                 removed=sorted(self._subscribed - wanted))  # fmt: skip
        self._subscribed = wanted

    # ------------------------------------------------------------ rebalance

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: finish the hand-offs started, commit what is handed off."""
        await self._drain(revoked, self._ctx.settings.shutdown_grace_s)
        await self._commit(force=True, only=revoked)
        for tp in revoked:
            self._done.pop(tp, None)
            self._committed.pop(tp, None)
        if revoked:
            log.info("kafka_partitions_revoked", partitions=_names(revoked))

    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._joined.set()
        if assigned:
            log.info("kafka_partitions_assigned", partitions=_names(assigned))

    # ------------------------------------------------------------ records

    def _freed(self, count: int) -> None:
        self._buffered -= count
        if self._buffered < self._buffer_limit:
            self._room.set()

    def _lane(self, tp: TopicPartition) -> Lane:
        lane = self._lanes.get(tp)
        if lane is None:
            publisher = self._ctx.publisher
            lane = Lane(f"{tp.topic}/{tp.partition}", self._send, publisher.confirm,
                        window=self._settings.partition_window, freed=self._freed)  # fmt: skip
            self._lanes[tp] = lane
        return lane

    async def _send(self, record: ConsumerRecord) -> Sent:
        return await self._ctx.publisher.send(_event(record))

    async def _read(self) -> None:
        while not self._stopping:
            if not self._subscribed:
                await self._has_topics.wait()
                continue
            await self._room.wait()  # back-pressure: the lanes hold enough records
            try:
                batch = await self.consumer.getmany(timeout_ms=_POLL_MS, max_records=_MAX_RECORDS)
            except KafkaError as exc:
                log.warning("kafka_fetch_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
                continue
            # No await between the fetch and the feeding: a revoke cannot fall in between.
            for tp, records in batch.items():
                self._buffered += len(records)
                self._lane(tp).feed(records)
            if self._buffered >= self._buffer_limit:
                self._room.clear()

    async def _commit_periodically(self) -> None:
        # Its own task: a commit round trip never holds up fetching.
        while True:
            await asyncio.sleep(self._settings.commit_interval_s)
            try:
                await self._commit(force=True)
            except Exception as exc:
                log.warning("kafka_commit_error", error=f"{type(exc).__name__}: {exc}")

    async def _drain(self, partitions: set[TopicPartition], grace_s: float) -> None:
        lanes = [(tp, self._lanes.pop(tp)) for tp in partitions if tp in self._lanes]
        await asyncio.gather(*(lane.drain(grace_s) for _, lane in lanes))
        for tp, lane in lanes:
            if lane.committable is not None:
                self._done[tp] = lane.committable

    async def _commit(
        self,
        *,
        force: bool = False,
        only: set[TopicPartition] | None = None,
        consumer: AIOKafkaConsumer | None = None,
    ) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < self._settings.commit_interval_s:
            return
        self._last_commit = now
        for tp, lane in self._lanes.items():
            if lane.committable is not None:
                self._done[tp] = lane.committable
        offsets = {
            tp: offset
            for tp, offset in self._done.items()
            if offset > self._committed.get(tp, -1) and (only is None or tp in only)
        }
        if not offsets:
            return
        # Every record of these offsets is confirmed, and its calls' queued records were added
        # to the publisher's writer first: let them land before the offsets do.
        await self._ctx.publisher.records_written()
        try:
            await (consumer or self.consumer).commit(offsets)
        except (KafkaError, AssertionError) as exc:
            # Not this member's partitions any more: their new owner reads from the last
            # committed offset, and the records handed off since are dropped as duplicates.
            log.info("kafka_commit_failed", error=f"{type(exc).__name__}: {exc}",
                     partitions=_names(offsets))  # fmt: skip
            return
        self._committed.update(offsets)


def _event(record: ConsumerRecord) -> SourceEvent:
    return record_event(
        record.topic, record.partition, record.offset,
        key=record.key, value=record.value, headers=list(record.headers or ()),
    )  # fmt: skip


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}/{tp.partition}" for tp in partitions)
