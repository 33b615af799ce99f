"""JetStream publishes whose acks are awaited later: publish now, get a future for the ack.

nats-py's ``JetStreamContext.publish_async`` does this too, but costs a quarter of a busy Kafka
connector's CPU per publish: an ``asyncio.wait_for`` on a semaphore and a random token from
``os.urandom`` (a system call) for each one. Here the reply subject is one inbox prefix plus a
counter, and nothing bounds the publishes in flight but the callers (each Kafka lane keeps at
most its window, the call-record writer its own). Replies arrive on one wildcard subscription;
the ack, an API error (:class:`nats.js.errors.APIError`) or "no responders"
(:class:`nats.js.errors.NoStreamResponseError`, the stream is missing) completes the future.
A future nobody answers stays pending: its caller times it out and cancels it.

Publishes from one task reach the server in the order made (one connection, one write buffer).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import PubAck

__all__ = ["AckFutures"]

# Forgotten futures (cancelled by their callers, never answered) are swept this often.
_SWEEP_EVERY = 10_000


class AckFutures:
    """Publishes with a reply inbox on ``nc``; :meth:`close` drops the subscription."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = ""
        self._sub: Subscription | None = None
        self._starting = asyncio.Lock()
        self._count = 0
        self._pending: dict[str, asyncio.Future[PubAck]] = {}

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[PubAck]:
        """Write the publish to the connection; the future completes with JetStream's answer."""
        if self._sub is None:
            await self._start()
        self._count += 1
        if self._count % _SWEEP_EVERY == 0:
            self._pending = {k: f for k, f in self._pending.items() if not f.done()}
        token = str(self._count)
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            del self._pending[token]
            future.cancel()
            raise
        return future

    async def _start(self) -> None:
        async with self._starting:
            if self._sub is None:
                prefix = self._nc.new_inbox() + "."
                self._sub = await self._nc.subscribe(prefix + "*", cb=self._answer)
                self._prefix = prefix

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _answer(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[len(self._prefix) :], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(nats.js.errors.NoStreamResponseError())
            return
        try:
            answer = json.loads(msg.data)
            if "error" in answer:
                nats.js.errors.APIError.from_error(answer["error"])  # raises the matching error
            future.set_result(PubAck.from_response(answer))
        except Exception as exc:  # an error answer, or not a JetStream answer at all
            future.set_exception(exc)
