"""The cron source: fires each due tick of each scheduled function as one invocation.

Exactly once however many cron connectors run: every connector computes the same ticks (cron
expressions are absolute; ``@every`` is aligned to the Unix epoch) and names the invocation of a
tick after the function and the tick's instant (``Nats-Msg-Id``
``cron:<tick, UTC ISO-8601>:<namespace>.<function>``, and a call id derived from it). The first
connector's publish runs; the others' are dropped by FAAS_INVOKE's duplicate window (10 min by
default) — so run as many cron connectors as you like for availability. The body is empty; the
function sees ``X-Topic: cron-function``, ``X-Connector: cron-connector`` and
``X-Cron-Scheduled-Time`` (the tick, RFC 3339 UTC).

A hand-off retries until the bus acks it (a bus outage delays ticks, loses none); ticks of other
functions keep firing meanwhile, since each tick is its own task. At most 100 hand-offs of one
function may be pending; beyond that new ticks of that function are skipped and logged.

``com.faasbus.schedule.concurrency=forbid``: before firing, the connector reads the call record of
the previous run — the last tick it handed off, and the schedule's previous tick, which another
connector may have fired. If either is not final (queued, running, retrying), the tick is
skipped (logged, ``faasbus_connector_skipped_total{reason="previous_running"}``). A handed-off
call whose record is not written yet counts as running. When the record cannot be read (the bus
is away) the tick is skipped too: forbid prefers a missed run to an overlapping one.

Catch-up and late ticks: see :mod:`faasbus.connectors.cron.jobs`. A catch-up tick that already
has a call record (it ran, or is running) is not fired again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Self

import structlog

from faasbus.connectors.cron.jobs import Due, Job, JobTable
from faasbus.connectors.cron.schedule import CRON_TOPIC
from faasbus.connectors.cron.settings import CronSettings
from faasbus.connectors.sdk import (
    ConnectorContext,
    FunctionRef,
    SourceEvent,
    TaskSet,
    cancel_and_wait,
    invocation_ids,
)

__all__ = ["CronSource"]

log = structlog.get_logger(__name__)

_MAX_PENDING_PER_JOB = 100
# The loop wakes at least this often, so a wall-clock jump (NTP step) is noticed soon.
_MAX_SLEEP_S = 5.0


def _stamp(tick: datetime) -> str:
    return tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CronSource:
    """An async context manager: schedules on enter, stops and drains on exit."""

    def __init__(
        self,
        ctx: ConnectorContext,
        settings: CronSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ctx = ctx
        self._settings = settings
        self._clock = clock
        self._jobs = JobTable(
            default_timezone=settings.default_timezone, catchup_window_s=settings.catchup_window_s
        )
        self._ticks = TaskSet("cron-ticks", limit=max(ctx.settings.max_inflight, 1))
        self._changed = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _functions(self) -> list[tuple[FunctionRef, dict[str, str]]]:
        topics = self._ctx.topics
        return [(ref, topics.annotations(ref)) for ref in topics.functions_for(CRON_TOPIC)]

    async def __aenter__(self) -> Self:
        self._ctx.catalog.on_change(self._changed.set)
        for due in self._jobs.sync(self._functions(), self._now(), initial=True):
            self._fire(due)
        self._loop = asyncio.create_task(self._run(), name="cron-scheduler")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            await cancel_and_wait([loop])
        await self._ticks.close(self._ctx.settings.shutdown_grace_s)

    async def _run(self) -> None:
        while True:
            try:
                now = self._now()
                if self._changed.is_set():
                    self._changed.clear()
                    self._jobs.sync(self._functions(), now)
                for due in self._jobs.due(now):
                    self._fire(due)
                wake = self._jobs.next_wake()
                delay = _MAX_SLEEP_S if wake is None else (wake - self._now()).total_seconds()
            except Exception:
                log.exception("cron_loop_failed")
                delay = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(max(delay, 0.0), _MAX_SLEEP_S))

    def _skip(self, job: Job, tick: datetime, reason: str) -> None:
        self._ctx.metrics.skipped.labels(self._ctx.name, job.ref.label, reason).inc()
        log.info("cron_tick_skipped", function=job.ref.name, namespace=job.ref.namespace,
                 tick=_stamp(tick), reason=reason)  # fmt: skip

    def _fire(self, due: Due) -> None:
        job = due.job
        if job.pending >= _MAX_PENDING_PER_JOB:
            self._skip(job, due.tick, "too_many_pending")
            return
        job.pending += 1
        if not self._ticks.spawn_nowait(
            self._tick(due), name=f"{job.ref.label}@{_stamp(due.tick)}"
        ):
            job.pending -= 1
            self._skip(job, due.tick, "overloaded")

    async def _tick(self, due: Due) -> None:
        job, stamp = due.job, _stamp(due.tick)
        try:
            _, call_id = invocation_ids(self._ctx.name, stamp, job.ref)
            if due.catchup and await self._has_record(call_id):
                log.info("cron_catchup_already_fired", function=job.ref.name, tick=stamp)
                return
            if job.spec.forbid_overlap and await self._previous_running(job, due.tick):
                self._skip(job, due.tick, "previous_running")
                return
            event = SourceEvent(
                topic=CRON_TOPIC,
                event_id=stamp,
                headers=(("X-Cron-Scheduled-Time", stamp),),
            )
            handoff = await self._ctx.publisher.hand_off(event, targets=[job.ref])
            job.last_call = (call_id, time.monotonic())
            log.info("cron_fired", function=job.ref.name, namespace=job.ref.namespace,
                     tick=stamp, call_id=call_id, catchup=due.catchup,
                     duplicate=handoff.duplicates > 0)  # fmt: skip
        finally:
            job.pending -= 1

    async def _has_record(self, call_id: str) -> bool:
        try:
            return await self._ctx.calls.get(call_id) is not None
        except Exception:
            return False  # fire: the duplicate window and the worker's record check still guard

    async def _previous_running(self, job: Job, tick: datetime) -> bool:
        previous_tick = job.spec.schedule.previous_before(tick)
        _, previous_call = invocation_ids(self._ctx.name, _stamp(previous_tick), job.ref)
        candidates: dict[str, float | None] = {previous_call: None}
        if job.last_call is not None:
            candidates[job.last_call[0]] = job.last_call[1]
        ttl_s = self._ctx.bus.settings.calls_ttl_s
        for call_id, handed_off_at in candidates.items():
            try:
                record = await self._ctx.calls.get(call_id)
            except Exception as exc:
                log.warning("cron_previous_run_unknown", function=job.ref.name, error=str(exc))
                return True
            if record is None:
                # Ours and not yet recorded: still queued (unless the record already expired).
                if handed_off_at is not None and time.monotonic() - handed_off_at < ttl_s:
                    return True
                continue
            if not record.state.final:
                return True
        return False
