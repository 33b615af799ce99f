"""The NATS source: core NATS subjects → topics → invocations.

Subscriptions (see :mod:`.settings`): the subjects in ``topics``; or ``<prefix>.>`` with the
subject minus the prefix as topic; or, by default, every plain-subject topic of the topic map,
followed as functions come and go. All subscriptions join one queue group, so several
connectors split the messages between them.

Each message becomes a :class:`~faasbus.connectors.sdk.SourceEvent`: body as is,
``Content-Type`` from the message's header or the ``content_type`` setting, the message's other
headers passed on (``Nats-*`` ones excepted) plus ``X-NATS-Subject``. A ``Nats-Msg-Id`` header is
the event's identity (so a message sent again is not run again within the dedupe window);
without one each message is a new event. Up to ``FAASBUS_CONNECTOR_MAX_INFLIGHT`` messages are
handed off concurrently; beyond that the subscription's own buffer holds them (NATS reports a
slow consumer if even that overflows).

Delivery: core NATS keeps no message for an absent subscriber and never redelivers, so a
message that arrives while no connector runs, or that a connector held when it was killed, is
gone — the limit of the source, not of the hand-off. A bus outage does not lose messages the
connector holds: their hand-off is retried until the bus is back. For at-least-once delivery
from NATS, send requests and retry until answered (:mod:`.replies`), or publish to a JetStream
stream and use a JetStream-aware source.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Self

import nats.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from faasbus.bus import Bus, BusSettings, BusUnavailable, connect
from faasbus.connectors.nats.replies import ack_reply, response_reply, unrouted_reply
from faasbus.connectors.nats.settings import NatsSettings, is_plain_subject, is_reserved_subject
from faasbus.connectors.sdk import (
    ConnectorContext,
    Handoff,
    SourceEvent,
    TaskSet,
    TopicFollower,
    wait_for_result,
)

__all__ = ["NatsSource"]

log = structlog.get_logger(__name__)

# Topics other connectors own: a subject of that name is not subscribed to in follow mode.
_FOREIGN_TOPICS = frozenset({"cron-function"})
_REPLY_HEADROOM = 16 * 1024


class NatsSource:
    """An async context manager: subscribes on enter; unsubscribes and drains on exit."""

    def __init__(self, ctx: ConnectorContext, settings: NatsSettings) -> None:
        self._ctx = ctx
        self._settings = settings
        self._source: Bus | None = None
        self._owns_source = False
        self._subscriptions: dict[str, Subscription] = {}
        self._inflight = TaskSet("nats-messages", limit=ctx.settings.max_inflight)
        self._follower = TopicFollower(ctx.topics, self._follow_and_flush, name="nats")
        self._refused: set[str] = set()

    @property
    def mode(self) -> str:
        if self._settings.common.topics:
            return "subjects"
        return "prefix" if self._settings.subject_prefix else "follow"

    async def __aenter__(self) -> Self:
        if self._settings.source_is_bus:
            self._source = self._ctx.bus
        else:
            self._source = await self._connect_source()
            self._owns_source = True
        try:
            if self.mode == "subjects":
                for subject in self._settings.common.topics:
                    await self._subscribe(subject)
            elif self.mode == "prefix":
                await self._subscribe(self._settings.subject_prefix + ">")
            else:
                await self._follow_once()
                self._follower.start()
            await self._nc.flush(timeout=10)
        except BaseException:
            await self.__aexit__()
            raise
        log.info(
            "nats_source_subscribed", mode=self.mode, subjects=sorted(self._subscriptions),
            source=self._settings.source_url, queue_group=self._settings.queue_group,
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._follower.close()
        # Stop intake but hand off what NATS already delivered (drain), within the grace period.
        grace_s = self._ctx.settings.shutdown_grace_s
        subscriptions, self._subscriptions = self._subscriptions, {}
        await asyncio.gather(*(self._drain(sub, grace_s) for sub in subscriptions.values()))
        await self._inflight.close(grace_s)
        if self._owns_source and self._source is not None:
            await self._source.close()
        self._source = None

    async def _connect_source(self) -> Bus:
        settings = BusSettings(nats_url=self._settings.source_url, connect_wait_s=10.0)
        while True:
            try:
                return await connect(settings, name="faasbus-nats-connector-source")
            except BusUnavailable as exc:
                log.warning(
                    "nats_source_unavailable", url=self._settings.source_url, error=str(exc)
                )

    # ------------------------------------------------------------ subscriptions

    @property
    def _nc(self) -> NatsClient:
        if self._source is None:
            raise RuntimeError("the NATS source is not connected")
        return self._source.nc

    async def _subscribe(self, subject: str) -> None:
        self._subscriptions[subject] = await self._nc.subscribe(
            subject, queue=self._settings.queue_group, cb=self._on_message
        )

    async def _unsubscribe(self, subject: str) -> None:
        subscription = self._subscriptions.pop(subject, None)
        if subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    @staticmethod
    async def _drain(subscription: Subscription, grace_s: float) -> None:
        try:
            await asyncio.wait_for(subscription.drain(), timeout=grace_s)  # type: ignore[no-untyped-call]
        except (TimeoutError, nats.errors.Error):
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    def _wanted(self) -> set[str]:
        wanted: set[str] = set()
        for topic in self._ctx.topics.topics():
            usable = is_plain_subject(topic) and topic not in _FOREIGN_TOPICS
            if usable and self._settings.source_is_bus and is_reserved_subject(topic):
                usable = False
            if usable:
                wanted.add(topic)
            elif topic not in self._refused and topic not in _FOREIGN_TOPICS:
                self._refused.add(topic)
                log.warning("nats_topic_not_subscribable", topic=topic)
        return wanted

    async def _follow_once(self) -> None:
        wanted = self._wanted()
        for subject in sorted(set(self._subscriptions) - wanted):
            await self._unsubscribe(subject)
            log.info("nats_unsubscribed", subject=subject)
        for subject in sorted(wanted - set(self._subscriptions)):
            await self._subscribe(subject)
            log.info("nats_subscribed", subject=subject)

    async def _follow_and_flush(self) -> None:
        await self._follow_once()
        await self._nc.flush(timeout=5)

    # ------------------------------------------------------------ messages

    def _topic_of(self, subject: str) -> str:
        prefix = self._settings.subject_prefix
        if prefix and subject.startswith(prefix):
            return subject[len(prefix) :]
        return subject

    async def _on_message(self, msg: Msg) -> None:
        # Runs in the subscription's own task: waiting here for a slot is the back-pressure.
        await self._inflight.spawn(self._handle(msg), name=msg.subject)

    async def _handle(self, msg: Msg) -> None:
        topic = self._topic_of(msg.subject)
        headers = dict(msg.headers or {})
        forwarded = [("X-NATS-Subject", msg.subject)]
        content_type = ""
        for name, value in headers.items():
            lowered = name.lower()
            if lowered == "content-type":
                content_type = value
            elif not lowered.startswith("nats-"):
                forwarded.append((name, value))
        source_id = headers.get("Nats-Msg-Id", "")
        event = SourceEvent(
            topic=topic,
            body=msg.data or b"",
            event_id=f"{topic}:{source_id}" if source_id else uuid.uuid4().hex,
            headers=tuple(forwarded),
            content_type=content_type,
        )
        handoff = await self._ctx.publisher.hand_off(event)
        if msg.reply and self._settings.reply_mode != "none":
            await self._answer(msg, handoff)

    async def _answer(self, msg: Msg, handoff: Handoff) -> None:
        if not handoff.routed:
            body, headers = unrouted_reply(handoff.event.topic)
        elif self._settings.reply_mode == "ack":
            body, headers = ack_reply(handoff)
        else:
            timeout_s = self._ctx.settings.upstream_timeout_s
            results = await asyncio.gather(
                *(wait_for_result(self._ctx.calls, inv.call_id, timeout_s=timeout_s)
                  for inv in handoff.invocations)
            )  # fmt: skip
            body, headers = response_reply(handoff, results)
        nc = self._nc
        if len(body) > nc.max_payload - _REPLY_HEADROOM:
            headers["X-Faasbus-Error"] = f"response of {len(body)} bytes is too large to reply with"
            body = b""
        try:
            await nc.publish(msg.reply, body, headers=headers)
        except nats.errors.Error as exc:
            log.warning("nats_reply_failed", subject=msg.subject, error=str(exc))
