"""Dead letters: list, inspect, redrive and purge what landed in FAAS_DLQ.

A dead letter is the original invocation message (body and envelope headers) plus what ended it:
``Faas-Dead-Kind`` (``invocation`` — retries exhausted or refused; ``callback`` — the function ran
but its callback was never accepted; ``invalid`` — undecodable), ``Faas-Dead-Reason``,
``Faas-Last-Status``, ``Faas-Attempts``, ``Faas-Dead-At`` (Unix ns) and ``Faas-Result`` (where the
function's last response body is kept).

Redrive puts the invocation back on FAAS_INVOKE under its own call id with a fresh dedupe id,
resets the call record to ``queued`` (so the worker runs it again rather than treating it as
finished), and removes the dead letter once the publish is acked.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext

from faasbus.bus import names
from faasbus.bus.calls import CallbackState, CallRecord, CallState, CallStore
from faasbus.bus.envelope import Invocation

__all__ = ["DeadLetter", "DeadLetters"]


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    subject: str
    headers: dict[str, str]
    body: bytes

    @property
    def namespace(self) -> str:
        return self.subject.split(".")[2]

    @property
    def function(self) -> str:
        return self.subject.split(".")[3]

    @property
    def dead_at_ns(self) -> int:
        value = self.headers.get("Faas-Dead-At", "0")
        return int(value) if value.isdigit() else 0

    def to_wire(self, *, with_body: bool = False) -> dict[str, Any]:
        h = self.headers
        out: dict[str, Any] = {
            "seq": self.seq,
            "callId": h.get("Faas-Call-Id", ""),
            "function": self.function,
            "namespace": self.namespace,
            "kind": h.get("Faas-Dead-Kind", ""),
            "reason": h.get("Faas-Dead-Reason", ""),
            "lastStatus": int(h.get("Faas-Last-Status", "0") or 0),
            "attempts": int(h.get("Faas-Attempts", "0") or 0),
            "deadAt": self.dead_at_ns / 1e9,
            "source": h.get("Faas-Source", ""),
            "callbackUrl": h.get("Faas-Callback-Url", ""),
            "size": len(self.body),
        }
        if with_body:
            try:
                out["body"], out["bodyEncoding"] = self.body.decode(), "utf-8"
            except UnicodeDecodeError:
                out["body"], out["bodyEncoding"] = base64.b64encode(self.body).decode(), "base64"
            out["headers"] = {k: v for k, v in h.items() if not k.startswith("Faas-")}
        return out


class DeadLetters:
    def __init__(self, js: JetStreamContext, calls: CallStore) -> None:
        self._js = js
        self._calls = calls

    @staticmethod
    def _filter(namespace: str | None, function: str | None) -> str:
        if function:
            return names.dead_subject(namespace or names.DEFAULT_NAMESPACE, function)
        if namespace:
            return f"{names.DEAD_PREFIX}.{namespace}.*"
        return f"{names.DEAD_PREFIX}.>"

    async def iterate(
        self, *, namespace: str | None = None, function: str | None = None, limit: int = 0
    ) -> AsyncIterator[DeadLetter]:
        """Dead letters in order, oldest first, optionally of one function or namespace."""
        subject = self._filter(namespace, function)
        seq, count = 1, 0
        while limit <= 0 or count < limit:
            try:
                raw = await self._js.get_msg(names.DLQ_STREAM, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return
            if raw.seq is None:
                return
            yield DeadLetter(raw.seq, raw.subject or "", dict(raw.headers or {}), raw.data or b"")
            seq, count = raw.seq + 1, count + 1

    async def get(self, seq: int) -> DeadLetter | None:
        try:
            raw = await self._js.get_msg(names.DLQ_STREAM, seq=seq)
        except nats.js.errors.NotFoundError:
            return None
        return DeadLetter(seq, raw.subject or "", dict(raw.headers or {}), raw.data or b"")

    async def redrive(self, letter: DeadLetter) -> str:
        """Back onto FAAS_INVOKE; returns the call id."""
        headers = {k: v for k, v in letter.headers.items() if not k.startswith("Faas-Dead-")}
        invocation = Invocation.from_message(headers, letter.body)
        fresh = replace(invocation, msg_id=f"{invocation.call_id}.redrive.{letter.seq}",
                        enqueued_at_ns=time.time_ns())  # fmt: skip
        base = CallRecord(call_id=fresh.call_id, function=fresh.function,
                          namespace=fresh.namespace, source=fresh.source, topic=fresh.topic,
                          callback_url=fresh.callback_url)  # fmt: skip

        def requeue(record: CallRecord) -> CallRecord:
            return replace(record, state=CallState.QUEUED, attempts=0, status_code=0, error="",
                           started_at=0.0, finished_at=0.0, cancel_requested=False,
                           callback_state=CallbackState.NONE, callback_attempts=0)  # fmt: skip

        await self._calls.update(fresh.call_id, requeue, create=base)
        await self._js.publish(fresh.subject, fresh.body, headers=fresh.nats_headers())
        await self._js.delete_msg(names.DLQ_STREAM, letter.seq)
        return fresh.call_id

    async def delete(self, seq: int) -> bool:
        try:
            return await self._js.delete_msg(names.DLQ_STREAM, seq)
        except nats.js.errors.NotFoundError:
            return False

    async def purge(self, *, namespace: str | None = None, function: str | None = None) -> None:
        subject = self._filter(namespace, function)
        await self._js.purge_stream(names.DLQ_STREAM, subject=subject)
