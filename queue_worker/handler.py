"""One message from FAAS_INVOKE, from delivery to ack: the only place that acks.

The flow of one delivery (``attempt`` = JetStream's delivery count):

1. Decode the envelope; a message that cannot be decoded is dead-lettered and terminated.
2. Read the call record. A final record means this is a redelivery after a crash or a callback
   retry: the function is not run again; only a pending callback is (re)sent.
3. A call whose cancellation was requested is finished as ``cancelled`` without running.
4. Otherwise run it, decide with the retry policy, and then: ``Retry`` → ``nak(delay)`` (delayed
   redelivery; no worker sleeps), ``Done`` or ``Dead`` → store the result, write the final record
   (``Dead`` also publishes to FAAS_DLQ), and send the callback.
5. The callback is delivered before the ack, and the ack is sent the moment it is accepted. If
   it fails the message is ``nak``-ed with backoff and step 2 resends it later; after
   ``max_callback_attempts`` the call is dead-lettered with a reference to its stored result, so
   nothing is lost.

Records and leases while a call runs: a call still running after ``running_record_after_s``
(``FAASBUS_RUNNING_RECORD_AFTER``, 100 ms by default) gets its ``running`` record then; a quicker
call goes from ``queued`` (or ``retrying``) straight to its final record, one KV write per call
fewer. So ``GET /system/calls/{id}`` shows ``running`` at most that long plus one KV round trip
(plus any event-loop lag) after a call started. A cancel flag the ``running`` write finds in the
record aborts the call, so a cancel whose ``faas.control.cancel`` message came before the call was
registered, or was lost, still takes effect. A call still running after a third of ``ack_wait``
gets an in-progress ack then and every third of ``ack_wait`` after: ``ack_wait`` is a lease, not
a run limit. A quick call costs neither task, only one short timer.

Writing the final record before the callback and the ack is what makes a crash at any point safe:
the function runs at most once per attempt and the callback is sent once per call, except in
the instant between a receiver accepting a callback and the ack leaving the socket: a crash exactly
there makes JetStream redeliver, and that callback is sent twice (at least once, never lost;
receivers can dedupe on ``X-Call-Id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import aiohttp
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from faasbus.bus import (
    CallbackState,
    CallRecord,
    CallState,
    CallStore,
    EndpointTable,
    FunctionCatalog,
    Invocation,
    names,
)
from faasbus.queue_worker.callbacks import send_callback
from faasbus.queue_worker.invoker import call_function
from faasbus.queue_worker.metrics import WorkerMetrics
from faasbus.queue_worker.retry import Dead, Outcome, Retry, RetryPolicy, decide
from faasbus.queue_worker.settings import WorkerSettings

__all__ = ["CallHandler"]

log = structlog.get_logger(__name__)

CANCELLED_STATUS = 499  # "client closed request" (nginx's code): the caller cancelled


@dataclass
class CallHandler:
    """Everything one delivery needs; shared by all deliveries of a worker."""

    js: JetStreamContext
    settings: WorkerSettings
    table: EndpointTable
    catalog: FunctionCatalog
    calls: CallStore
    session: aiohttp.ClientSession
    metrics: WorkerMetrics
    running: dict[str, asyncio.Task[Outcome]]
    # The record and KV revision each running delivery wrote last: updates skip a read.
    known: dict[str, tuple[CallRecord, int]] = field(default_factory=dict)

    async def handle(self, msg: Msg) -> None:
        try:
            invocation = Invocation.from_message(msg.headers, msg.data or b"")
        except ValueError as exc:
            log.warning("invocation_undecodable", subject=msg.subject, error=str(exc))
            await self._dead_letter_raw(msg, str(exc))
            await msg.term()
            return
        try:
            await self._handle(msg, invocation)
        finally:
            self.known.pop(invocation.call_id, None)

    async def _handle(self, msg: Msg, invocation: Invocation) -> None:
        attempt = msg.metadata.num_delivered
        policy = RetryPolicy.for_function(
            self.settings, self.catalog.annotations(invocation.namespace, invocation.function),
            function=_label(invocation),
        )  # fmt: skip
        entry = await self.calls.entry(invocation.call_id)
        if entry is None:
            record = await self._record(invocation, lambda r: r)
        else:
            record = entry[0]
            self.known[invocation.call_id] = entry
        if record.state.final:
            await self._finish(msg, invocation, record, policy)
            return
        if record.cancel_requested:
            record = await self._record(invocation, lambda r: replace(
                r, state=CallState.CANCELLED, status_code=CANCELLED_STATUS, finished_at=time.time(),
                callback_state=_callback_state(r)))  # fmt: skip
            await self._finish(msg, invocation, record, policy)
            return
        started = time.time()

        def ran(r: CallRecord, state: CallState) -> CallRecord:
            # What the running record says; every write after this attempt began says it too.
            return replace(r, state=state, attempts=attempt, max_attempts=policy.attempts,
                           started_at=r.started_at or started)  # fmt: skip

        outcome = await self._run(msg, invocation, lambda r: ran(r, CallState.RUNNING))
        if outcome is None:  # cancelled while running
            record = await self._record(invocation, lambda r: replace(
                ran(r, CallState.CANCELLED), status_code=CANCELLED_STATUS,
                finished_at=time.time(), callback_state=_callback_state(r)))  # fmt: skip
            await self._finish(msg, invocation, record, policy)
            return
        decision = decide(outcome, attempt, policy)
        label = _label(invocation)
        if isinstance(decision, Retry):
            self.metrics.retries.labels(label).inc()
            await self._record(invocation, lambda r: replace(
                ran(r, CallState.RETRYING), status_code=outcome.status,
                error=outcome.error))  # fmt: skip
            log.info("call_retry", call_id=invocation.call_id, function=invocation.function,
                     attempt=attempt, status=outcome.status, delay_s=decision.delay_s)  # fmt: skip
            await msg.nak(delay=decision.delay_s)
            return
        inline = self.calls.inline(outcome.body)
        if not inline and outcome.body:
            await self.calls.put_result(invocation.call_id, outcome.body)
        state = CallState.DEAD if isinstance(decision, Dead) else (
            CallState.SUCCEEDED if outcome.ok else CallState.FAILED)  # fmt: skip
        if isinstance(decision, Dead):
            await self._dead_letter(invocation, msg, kind="invocation", reason=decision.reason,
                                    status=outcome.status, attempts=attempt)  # fmt: skip
        headers = {k: v for k, v in outcome.headers.items() if len(k) + len(v) < 4096}
        record = await self._record(invocation, lambda r: replace(
            ran(r, state), status_code=outcome.status, error=outcome.error,
            finished_at=time.time(), duration_s=outcome.duration_s, result_headers=headers,
            result_size=len(outcome.body), result_b64=inline,
            callback_state=_callback_state(r)))  # fmt: skip
        self.metrics.processed.labels(label, str(outcome.status)).inc()
        log.info("call_done", call_id=invocation.call_id, function=invocation.function,
                 state=state.value, status=outcome.status, attempt=attempt,
                 duration_s=round(outcome.duration_s, 6))  # fmt: skip
        await self._finish(msg, invocation, record, policy, body=outcome.body)

    async def _run(
        self, msg: Msg, invocation: Invocation, running: Callable[[CallRecord], CallRecord]
    ) -> Outcome | None:
        """Call the function; ``None`` if it was cancelled on request.

        A quick call costs no task and no write besides its own: once the call has run
        ``running_record_after_s`` or a lease interval (a third of ``ack_wait``), whichever is
        shorter, a timer starts the ``running`` write (``running`` says what it writes) and the
        lease keeper, each waiting for its own moment.
        """
        body = invocation.body
        if invocation.payload_ref:
            store = await self.js.object_store(names.PAYLOADS_BUCKET)
            body = (await store.get(invocation.payload_ref)).data or b""
        task = asyncio.create_task(
            call_function(self.session, self.table, invocation, body,
                          timeout_s=self.settings.upstream_timeout_s,
                          replica_wait_s=self.settings.replica_wait_s),
            name=f"call-{invocation.call_id}",
        )  # fmt: skip
        self.running[invocation.call_id] = task
        label = _label(invocation)
        self.metrics.inflight.labels(label).inc()
        lease_every = max(self.settings.ack_wait_s / 3, 0.5)
        mark_after = self.settings.running_record_after_s
        first = min(lease_every, mark_after)
        helpers: list[asyncio.Task[None]] = []
        writing: list[bool] = []  # set by the running write once it has begun

        def slow() -> None:  # one timer per call, short-lived: the timer heap stays small
            helpers.append(asyncio.create_task(
                self._keep_lease(msg, lease_every, first=lease_every - first),
                name=f"lease-{invocation.call_id}"))  # fmt: skip
            helpers.append(asyncio.create_task(
                self._mark_running(invocation, task, running, mark_after - first, writing),
                name=f"running-{invocation.call_id}"))  # fmt: skip

        timer = asyncio.get_running_loop().call_later(first, slow)
        current = asyncio.current_task()
        try:
            return await task
        except asyncio.CancelledError:
            if current is not None and current.cancelling():
                raise  # the worker is stopping, not the call
            return None  # cancelled on request (DELETE /async-function/{id})
        finally:
            timer.cancel()
            self.running.pop(invocation.call_id, None)
            self.metrics.inflight.labels(label).dec()
            if helpers:
                lease, marker = helpers
                lease.cancel()
                if not writing or (current is not None and current.cancelling()):
                    marker.cancel()
                # A running write under way ends before the next write starts from it.
                await asyncio.wait(helpers)

    async def _keep_lease(self, msg: Msg, every: float, *, first: float) -> None:
        """ack_wait is a lease, not a run limit: renew it while the call runs."""
        await asyncio.sleep(first)
        while True:
            with contextlib.suppress(Exception):
                await msg.in_progress()
            await asyncio.sleep(every)

    async def _mark_running(
        self, invocation: Invocation, task: asyncio.Task[Outcome],
        running: Callable[[CallRecord], CallRecord], after: float, writing: list[bool],
    ) -> None:  # fmt: skip
        """Say ``running`` in the record; abort the call if the record asks for a cancel."""
        await asyncio.sleep(after)
        if task.done():
            return
        writing.append(True)
        try:
            record = await self._record(invocation, running)
        except Exception as exc:  # the final write retries from a fresh read
            log.warning("running_record_failed", call_id=invocation.call_id, error=str(exc))
            return
        if record.cancel_requested and not task.done():
            log.info("call_cancelled_by_record", call_id=invocation.call_id)
            task.cancel()

    async def _finish(
        self, msg: Msg, invocation: Invocation, record: CallRecord, policy: RetryPolicy,
        *, body: bytes | None = None,
    ) -> None:  # fmt: skip
        """Send the callback if one is owed, then ack (or nak to try the callback again).

        ``body`` is the result when this delivery just produced it; a redelivery reads it back.
        """
        if record.callback_state not in (CallbackState.PENDING, CallbackState.RETRYING):
            await msg.ack()
            return
        if record.state is CallState.CANCELLED:
            body = b""
        elif body is None:
            body = await self.calls.get_result(invocation.call_id, record) or b""
        extra = {
            "X-Call-Id": invocation.call_id,
            "X-Function-Status": str(record.status_code or 503),
            "X-Function-Name": invocation.function,
            "X-Duration-Seconds": f"{record.duration_s:.6f}",
            "X-Retry": str(max(record.attempts - 1, 0)),
            "X-Retry-Max": str(policy.attempts),
            "X-Call-State": record.state.value,
        }
        result = await send_callback(
            self.session, record.callback_url, body=body, response_headers=record.result_headers,
            extra_headers=extra, signing_secret=self.settings.callback_signing_secret,
            timeout_s=self.settings.callback_timeout_s,
            allow_link_local=self.settings.allow_link_local_callbacks,
        )  # fmt: skip
        tries = record.callback_attempts + 1
        label = _label(invocation)
        if result.delivered or result.refused:
            outcome = CallbackState.DELIVERED if result.delivered else CallbackState.REFUSED
            self.metrics.callbacks.labels(label, outcome.value).inc()
            # Ack first: it is one write on an open socket, so the gap in which a crash would
            # make JetStream redeliver an already delivered callback is as short as it can be.
            await msg.ack()
            await self._record(invocation, lambda r: replace(
                r, callback_state=outcome, callback_attempts=tries,
                callback_status=result.status,
                error=r.error if result.delivered else result.error))  # fmt: skip
            return
        if tries >= self.settings.max_callback_attempts:
            self.metrics.callbacks.labels(label, "dead").inc()
            reason = f"callback failed {tries} times: {result.error}"
            await self._dead_letter(
                invocation,
                msg,
                kind="callback",
                reason=reason,
                status=record.status_code,
                attempts=record.attempts,
            )
            await self._record(invocation, lambda r: replace(
                r, callback_state=CallbackState.DEAD, callback_attempts=tries,
                callback_status=result.status))  # fmt: skip
            await msg.ack()
            return
        self.metrics.callbacks.labels(label, "retry").inc()
        await self._record(invocation, lambda r: replace(
            r, callback_state=CallbackState.RETRYING, callback_attempts=tries,
            callback_status=result.status))  # fmt: skip
        delay = policy.delay(tries)
        log.info("callback_retry", call_id=invocation.call_id, tries=tries, error=result.error,
                 delay_s=delay)  # fmt: skip
        await msg.nak(delay=delay)

    async def _record(
        self, invocation: Invocation, change: Callable[[CallRecord], CallRecord]
    ) -> CallRecord:
        def base() -> CallRecord:  # the record to start from when there is none yet
            return CallRecord(
                call_id=invocation.call_id, function=invocation.function,
                namespace=invocation.namespace, source=invocation.source, topic=invocation.topic,
                callback_url=invocation.callback_url,
                queued_at=(invocation.enqueued_at_ns / 1e9) or time.time(),
            )  # fmt: skip

        def filled(record: CallRecord) -> CallRecord:
            # A record written before the message (by the gateway) may lack what it carries.
            if record.callback_url or not invocation.callback_url:
                return change(record)
            return change(replace(record, callback_url=invocation.callback_url))

        record, revision = await self.calls.update_known(
            invocation.call_id, filled, create=base, known=self.known.get(invocation.call_id)
        )
        self.known[invocation.call_id] = (record, revision)
        return record

    async def _dead_letter(
        self, invocation: Invocation, msg: Msg, *, kind: str, reason: str, status: int,
        attempts: int,
    ) -> None:  # fmt: skip
        headers = invocation.nats_headers()
        headers.pop("Nats-Msg-Id", None)
        headers.update({
            "Faas-Dead-Kind": kind,
            "Faas-Dead-Reason": reason[:1000],
            "Faas-Dead-At": str(time.time_ns()),
            "Faas-Last-Status": str(status),
            "Faas-Attempts": str(attempts),
            "Faas-Result": f"results/{invocation.call_id}",
        })  # fmt: skip
        await self.js.publish(
            names.dead_subject(invocation.namespace, invocation.function),
            msg.data or b"", headers=headers,
        )  # fmt: skip
        self.metrics.dead.labels(_label(invocation), kind).inc()
        log.warning("call_dead_lettered", call_id=invocation.call_id,
                    function=invocation.function, kind=kind, reason=reason)  # fmt: skip

    async def _dead_letter_raw(self, msg: Msg, reason: str) -> None:
        tokens = msg.subject.split(".")
        if len(tokens) == 4 and all(names.is_dns1123_label(t) for t in tokens[2:]):
            subject = names.dead_subject(tokens[2], tokens[3])
            headers = dict(msg.headers or {})
            headers.pop("Nats-Msg-Id", None)
            headers.update({"Faas-Dead-Kind": "invalid", "Faas-Dead-Reason": reason})
            await self.js.publish(subject, msg.data or b"", headers=headers)


def _label(invocation: Invocation) -> str:
    return f"{invocation.function}.{invocation.namespace}"


def _callback_state(record: CallRecord) -> CallbackState:
    return CallbackState.PENDING if record.callback_url else CallbackState.NONE
