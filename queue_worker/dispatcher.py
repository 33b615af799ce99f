"""The queue worker's engine: one pull consumer per function, fair capacity, clean shutdown.

Why one consumer per function: FAAS_INVOKE is a work queue, and a single consumer over all
subjects would let one slow or failing function fill ``max_ack_pending`` and the worker's slots,
holding up everyone else's calls (OpenFaaS CE's one FIFO queue). Each function gets a durable pull
consumer ``fn_<namespace>_<function>`` filtered on its subject and shared by every worker process
(JetStream spreads its messages among them), and a fetch loop per worker that asks only for as many
messages as the function's fair share of this worker's ``max_inflight`` allows. The fair share is
``max_inflight`` divided by one more than the number of functions busy right now (at least 1),
or the ``com.faasbus.max_concurrency`` annotation when lower; the spare share is what lets a
function that just received work start at once.

Functions are discovered from the function catalog and from subjects that hold messages (a call
queued for a function deleted since is still delivered — and dead-lettered as not found).

Shutdown: stop fetching, give in-flight calls ``shutdown_grace_s``, then cancel what remains,
whose messages are left unacked for another worker (redelivered after ``ack_wait``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math

import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from faasbus.bus import FunctionCatalog, cancel_and_wait, names
from faasbus.queue_worker.handler import CallHandler

__all__ = ["Dispatcher"]

log = structlog.get_logger(__name__)

_DISCOVERY_INTERVAL_S = 1.0
_FETCH_WAIT_S = 2.0
_IDLE_EXIT_S = 60.0


def consumer_name(namespace: str, function: str) -> str:
    return f"fn_{namespace}_{function}"


class Dispatcher:
    def __init__(self, handler: CallHandler, catalog: FunctionCatalog) -> None:
        self._handler = handler
        self._catalog = catalog
        self._settings = handler.settings
        self._js = handler.js
        self._loops: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._inflight: dict[tuple[str, str], int] = {}
        self._calls: set[asyncio.Task[None]] = set()
        self._capacity = asyncio.Condition()
        self._stopping = asyncio.Event()
        self._pending: dict[tuple[str, str], int] = {}

    @property
    def total_inflight(self) -> int:
        return sum(self._inflight.values())

    async def run(self) -> None:
        """Discover functions and keep a fetch loop for each until :meth:`stop`."""
        while not self._stopping.is_set():
            try:
                await self._discover()
            except Exception as exc:  # the bus is away; keep going
                log.warning("discovery_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), _DISCOVERY_INTERVAL_S)

    async def _discover(self) -> None:
        info = await self._js.stream_info(
            names.INVOKE_STREAM, subjects_filter=f"{names.INVOKE_PREFIX}.>"
        )
        subjects = info.state.subjects or {}
        pending: dict[tuple[str, str], int] = {}
        for subject, count in subjects.items():
            tokens = subject.split(".")
            if len(tokens) == 4 and count > 0:
                pending[(tokens[2], tokens[3])] = count
        for ident in set(pending) - set(self._pending):
            self._handler.metrics.pending.labels(f"{ident[1]}.{ident[0]}").set(0)
        self._pending = pending
        for (namespace, function), count in pending.items():
            self._handler.metrics.pending.labels(f"{function}.{namespace}").set(count)
        wanted = set(pending) | {ident for ident, _ in self._catalog.items()}
        for ident in wanted:
            loop = self._loops.get(ident)
            if loop is None or loop.done():
                self._loops[ident] = asyncio.create_task(
                    self._fetch_loop(*ident), name=f"fetch-{ident[0]}.{ident[1]}"
                )

    def _share(self, ident: tuple[str, str]) -> int:
        busy = {key for key, count in self._inflight.items() if count > 0} | {ident}
        # One share more than there are busy functions stays free for a function that has just
        # received work, so a newcomer never waits for a slow function's calls to end.
        share = max(1, math.floor(self._settings.max_inflight / (len(busy) + 1)))
        cap = self._catalog.annotations(*ident).get("com.faasbus.max_concurrency", "")
        if cap.isdigit() and int(cap) > 0:
            share = min(share, int(cap))
        return share

    def _room(self, ident: tuple[str, str]) -> int:
        free = self._settings.max_inflight - self.total_inflight
        return min(free, self._share(ident) - self._inflight.get(ident, 0))

    async def _consumer(self, namespace: str, function: str) -> object:
        name = consumer_name(namespace, function)
        config = ConsumerConfig(
            durable_name=name,
            filter_subject=names.invoke_subject(namespace, function),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._settings.ack_wait_s,
            max_deliver=-1,
            max_ack_pending=-1,
            max_waiting=512,
        )
        try:
            await self._js.add_consumer(names.INVOKE_STREAM, config)
        except nats.js.errors.BadRequestError as exc:
            # Exists with other settings (an older worker's ack_wait): use it as it is.
            log.info("consumer_exists", consumer=name, detail=str(exc))
        return await self._js.pull_subscribe_bind(durable=name, stream=names.INVOKE_STREAM)

    async def _fetch_loop(self, namespace: str, function: str) -> None:
        ident = (namespace, function)
        try:
            psub = await self._consumer(namespace, function)
        except Exception as exc:
            log.warning("consumer_failed", function=function, namespace=namespace, error=str(exc))
            await asyncio.sleep(1.0)
            return
        idle_s = 0.0
        try:
            while not self._stopping.is_set():
                room = self._room(ident)
                if room <= 0:
                    async with self._capacity:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._capacity.wait(), 1.0)
                    continue
                try:
                    msgs: list[Msg] = await psub.fetch(  # type: ignore[attr-defined]
                        batch=min(room, 64), timeout=_FETCH_WAIT_S
                    )
                except (nats.errors.TimeoutError, TimeoutError):
                    idle_s += _FETCH_WAIT_S
                    gone = self._catalog.get(*ident) is None and ident not in self._pending
                    if gone and idle_s >= _IDLE_EXIT_S:
                        return
                    continue
                except nats.errors.Error as exc:
                    log.warning("fetch_failed", function=function, error=str(exc))
                    await asyncio.sleep(0.5)
                    continue
                idle_s = 0.0
                for msg in msgs:
                    self._start_call(ident, msg)
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()  # type: ignore[attr-defined]

    def _start_call(self, ident: tuple[str, str], msg: Msg) -> None:
        self._inflight[ident] = self._inflight.get(ident, 0) + 1
        self._handler.metrics.submitted.labels(f"{ident[1]}.{ident[0]}").inc()
        task = asyncio.create_task(self._guarded(ident, msg), name=f"call-{ident[1]}")
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _guarded(self, ident: tuple[str, str], msg: Msg) -> None:
        try:
            await self._handler.handle(msg)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Not acked: JetStream redelivers it after ack_wait; the record says what happened.
            log.exception("call_handler_failed", subject=msg.subject)
        finally:
            self._inflight[ident] -= 1
            async with self._capacity:
                self._capacity.notify_all()

    async def stop(self) -> None:
        """Stop fetching, let in-flight calls finish within the grace, cancel the rest."""
        self._stopping.set()
        await cancel_and_wait(self._loops.values())
        if self._calls:
            log.info("draining", inflight=len(self._calls), grace_s=self._settings.shutdown_grace_s)
            _done, pending = await asyncio.wait(
                set(self._calls), timeout=self._settings.shutdown_grace_s
            )
            await cancel_and_wait(pending)

    def cancel_call(self, call_id: str) -> bool:
        """Abort a running call (DELETE /async-function/{id}); True if it was running here."""
        task = self._handler.running.get(call_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True
