"""The SQS source: queues → topics → invocations; a message is deleted only once handed off.

Polling: every configured queue some function subscribes to (its ``topic`` annotation names the
queue) gets its own poller, long-polling ``receive_message`` concurrently with the others. The
set of polled queues follows the topic map: a queue gains a poller when a function names it and
loses it when the last one goes, without a restart. A poller hands off up to
``FAASBUS_SQS_MAX_BATCHES`` received batches at once and receives the next batch meanwhile.

Each message becomes a :class:`~faasbus.connectors.sdk.SourceEvent` whose identity is the SQS
message id, so a message received again (after a crash between hand-off and delete) publishes
invocations with the same ``Nats-Msg-Id`` and call id and does not run twice. Headers:
``X-SQS-Message-ID``, ``X-SQS-Queue-URL``, ``X-SQS-Message-Group-ID`` (FIFO) and every message
attribute as ``X-SQS-Attr-<name>`` (binary ones base64). An attribute ``Content-Type`` sets the
invocation's content type; ``Content-Transfer-Encoding: base64`` says the body is base64 of the
real payload (SQS bodies are text), which is decoded before the hand-off.

Acknowledgement: a batch's messages are deleted (``delete_message_batch``) only after JetStream
acked every invocation of each of them. While hand-offs run, the visibility of the messages not
yet handed off is extended every half visibility timeout. A message that cannot be handed off —
no function subscribes to its queue any more, or the bus stays away beyond
``FAASBUS_SQS_HANDOFF_TIMEOUT`` — is logged and left alone: it returns after the visibility
timeout and the queue's redrive policy (``maxReceiveCount`` → dead-letter queue) applies.

FIFO queues (``.fifo``): messages of one ``MessageGroupId`` are handed off one after the other in
the order received, and a message that could not be handed off stops its group for the batch (the
later ones are not handed off either, so they cannot overtake it). A FIFO queue's poller
receives its next batch only once the current one is deleted or left.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import time
from collections.abc import Sequence
from typing import Any, Self

import aioboto3
import structlog
from botocore.config import Config

from faasbus.connectors.sdk import ConnectorContext, SourceEvent, TaskSet, TopicFollower
from faasbus.connectors.sqs.settings import SqsSettings

__all__ = ["SqsSource"]

log = structlog.get_logger(__name__)

Message = dict[str, Any]

_BATCH = 10  # SQS's limit for batch calls
_RETRY_MAX_S = 10.0


def _clean(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def _chunks(items: Sequence[Message], size: int = _BATCH) -> list[Sequence[Message]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class SqsSource:
    """An async context manager: starts the pollers on enter; stops and drains them on exit."""

    def __init__(self, ctx: ConnectorContext, settings: SqsSettings) -> None:
        self._ctx = ctx
        self._settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._pollers: dict[str, _QueuePoller] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._follower = TopicFollower(ctx.topics, self._reconcile_async, name="sqs")

    async def __aenter__(self) -> Self:
        session = aioboto3.Session(region_name=self._settings.region)
        # Per queue: one long poll, and per batch in flight one extend or delete call.
        per_queue = 1 + 2 * self._settings.max_batches
        config = Config(max_pool_connections=max(10, per_queue * len(self._settings.queue_urls)))
        self._client = await self._stack.enter_async_context(
            session.client("sqs", endpoint_url=self._settings.endpoint_url, config=config)
        )
        self._reconcile()
        self._follower.start()
        log.info(
            "sqs_source_started", queues=list(self._settings.queue_urls),
            polled=sorted(self._pollers), endpoint=self._settings.endpoint_url or "(aws)",
            visibility_timeout_s=self._settings.visibility_timeout_s,
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._follower.close()
        grace_s = self._ctx.settings.shutdown_grace_s
        pollers, self._pollers = list(self._pollers.values()), {}
        await asyncio.gather(*(poller.close(grace_s) for poller in pollers))
        if self._retiring:
            await asyncio.wait(self._retiring)
        await self._stack.aclose()

    def _reconcile(self) -> None:
        """One poller per configured queue that has subscribers."""
        wanted = {
            name: url
            for name, url in self._settings.queues.items()
            if self._ctx.topics.functions_for(name)
        }
        for name in sorted(set(self._pollers) - set(wanted)):
            poller = self._pollers.pop(name)
            closing = asyncio.create_task(
                poller.close(self._ctx.settings.shutdown_grace_s), name=f"sqs-retire:{name}"
            )
            self._retiring.add(closing)
            closing.add_done_callback(self._retiring.discard)
            log.info("sqs_poller_stopped", queue=name, reason="no function subscribes")
        for name in sorted(set(wanted) - set(self._pollers)):
            self._pollers[name] = _QueuePoller(
                self._ctx, self._settings, self._client, name, wanted[name]
            )
            log.info("sqs_poller_started", queue=name, url=wanted[name])

    async def _reconcile_async(self) -> None:
        self._reconcile()


class _QueuePoller:
    """Long-polls one queue and hands its batches off; owns its receive and batch tasks."""

    def __init__(
        self, ctx: ConnectorContext, settings: SqsSettings, client: Any, name: str, url: str
    ) -> None:
        self._ctx = ctx
        self._settings = settings
        self._client = client
        self.name = name
        self.url = url
        self.fifo = name.endswith(".fifo")
        # FIFO: one batch at a time. A receive made while a group is in flight skips that group
        # (moto's long poll even keeps skipping it after the delete), and batches of one
        # queue's groups gain little from overlapping.
        self._slots = asyncio.Semaphore(1 if self.fifo else self._settings.max_batches)
        self._batches = TaskSet(f"sqs-batches:{name}", limit=self._settings.max_batches + 1)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"sqs-poller:{name}")

    async def close(self, grace_s: float) -> None:
        """Stop receiving at once (a long poll is abandoned: whatever it had taken returns after
        the visibility timeout), then let the batches finish within ``grace_s``."""
        self._stopping = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._batches.close(grace_s)

    # ------------------------------------------------------------ receiving

    async def _run(self) -> None:
        delay = 0.5
        while not self._stopping:
            await self._slots.acquire()
            try:
                messages = await self._receive()
            except asyncio.CancelledError:
                self._slots.release()
                raise
            except Exception as exc:
                self._slots.release()
                log.warning("sqs_receive_failed", queue=self.name, url=self.url,
                            error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            delay = 0.5
            if not messages:
                self._slots.release()
                continue
            if not self._batches.spawn_nowait(self._batch(messages), name=messages[0]["MessageId"]):
                self._slots.release()  # closing: the messages return after the visibility timeout

    async def _receive(self) -> list[Message]:
        response = await self._client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=self._settings.max_messages,
            WaitTimeSeconds=self._settings.wait_time_s,
            VisibilityTimeout=self._settings.visibility_timeout_s,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        messages: list[Message] = response.get("Messages", [])
        return messages

    # ------------------------------------------------------------ one batch

    async def _batch(self, messages: list[Message]) -> None:
        """Hand off, then delete what was handed off; the slot is freed only after the delete
        (a FIFO queue's next receive must not find its groups still in flight)."""
        started = time.monotonic()
        # Kept invisible until deleted: every message except those given up on.
        pending = {m["ReceiptHandle"]: m for m in messages}
        handed: list[Message] = []
        try:
            extender = asyncio.create_task(self._extend(pending), name=f"sqs-extend:{self.name}")
            try:
                await asyncio.wait_for(
                    self._hand_off_all(messages, pending, handed), self._settings.handoff_timeout_s
                )
            except TimeoutError:
                log.warning(
                    "sqs_handoff_timed_out", queue=self.name, left=len(messages) - len(handed),
                    timeout_s=self._settings.handoff_timeout_s,
                    outcome="left in the queue: it returns after the visibility timeout",
                )  # fmt: skip
            finally:
                extender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await extender
            deleted = await self._delete(handed)
        finally:
            self._slots.release()
        log.debug("sqs_batch_done", queue=self.name, received=len(messages), deleted=deleted,
                  duration_s=round(time.monotonic() - started, 3))  # fmt: skip

    async def _hand_off_all(
        self, messages: list[Message], pending: dict[str, Message], handed: list[Message]
    ) -> None:
        groups: dict[str, list[Message]] = {}
        for message in messages:
            key = message["MessageId"]
            if self.fifo:
                key = message.get("Attributes", {}).get("MessageGroupId", "")
            groups.setdefault(key, []).append(message)

        async def in_order(group: list[Message]) -> None:
            for index, message in enumerate(group):
                if await self._hand_off(message):
                    handed.append(message)
                    continue
                pending.pop(message["ReceiptHandle"], None)
                if len(group) > index + 1:
                    for later in group[index + 1 :]:
                        pending.pop(later["ReceiptHandle"], None)
                    held = [m["MessageId"] for m in group[index + 1 :]]
                    log.warning("sqs_group_held_back", queue=self.name, message_ids=held)
                    return

        await asyncio.gather(*(in_order(group) for group in groups.values()))

    async def _hand_off(self, message: Message) -> bool:
        targets = self._ctx.topics.functions_for(self.name)
        if not targets:
            self._ctx.metrics.skipped.labels("sqs", "(none)", "unrouted").inc()
            log.warning(
                "sqs_message_not_handed_off", queue=self.name, message_id=message["MessageId"],
                reason="no function subscribes to the queue",
                outcome="left in the queue: it returns after the visibility timeout",
            )  # fmt: skip
            return False
        await self._ctx.publisher.hand_off(self._event(message), targets=targets)
        return True

    def _event(self, message: Message) -> SourceEvent:
        headers = [("X-SQS-Message-ID", message["MessageId"]), ("X-SQS-Queue-URL", self.url)]
        group = message.get("Attributes", {}).get("MessageGroupId")
        if group:
            headers.append(("X-SQS-Message-Group-ID", _clean(group)))
        content_type = ""
        encoded = False
        for name, attribute in sorted(message.get("MessageAttributes", {}).items()):
            if "BinaryValue" in attribute:
                value = base64.b64encode(attribute["BinaryValue"]).decode()
            else:
                value = _clean(str(attribute.get("StringValue", "")))
            lowered = name.lower()
            if lowered == "content-type":
                content_type = value
            elif lowered == "content-transfer-encoding":
                encoded = value.strip().lower() == "base64"
            headers.append((f"X-SQS-Attr-{name}", value))
        text: str = message.get("Body", "")
        body = text.encode()
        if encoded:
            try:
                body = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                log.warning("sqs_body_not_base64", queue=self.name, message_id=message["MessageId"])
        return SourceEvent(
            topic=self.name, body=body, event_id=message["MessageId"],
            headers=tuple(headers), content_type=content_type,
        )  # fmt: skip

    async def _extend(self, pending: dict[str, Message]) -> None:
        """Keep the undecided messages invisible while their hand-off runs."""
        timeout = self._settings.visibility_timeout_s
        while True:
            await asyncio.sleep(max(timeout / 2, 0.5))
            for chunk in _chunks(list(pending.values())):
                entries = [
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": timeout,
                    }
                    for i, m in enumerate(chunk)
                ]
                try:
                    await self._client.change_message_visibility_batch(
                        QueueUrl=self.url, Entries=entries
                    )
                except Exception as exc:
                    log.warning("sqs_visibility_extend_failed", queue=self.name,
                                error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                else:
                    log.info("sqs_visibility_extended", queue=self.name, count=len(entries),
                             visibility_timeout_s=timeout)  # fmt: skip

    async def _delete(self, handed: list[Message]) -> int:
        """Delete the handed-off messages; a failed delete means a redelivery, run once."""
        deleted = 0
        for chunk in _chunks(handed):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
            ]
            for attempt in range(3):
                try:
                    response = await self._client.delete_message_batch(
                        QueueUrl=self.url, Entries=entries
                    )
                except Exception as exc:
                    log.warning("sqs_delete_failed", queue=self.name, attempt=attempt + 1,
                                error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                failed = response.get("Failed", [])
                if failed:
                    log.warning("sqs_delete_refused", queue=self.name, failed=failed)
                deleted += len(response.get("Successful", []))
                break
        return deleted
