"""The cron job table: which function fires when, kept in step with the function catalog.

Pure and clock-driven (every method takes ``now``), so the policy below is tested without
waiting for real time to pass.

* A function joins when its topic includes ``cron-function``; its schedule, time-zone and
  concurrency annotations are parsed once per change. An invalid one is logged once per distinct
  value (not once per tick) and the function is skipped until its annotations change; other
  functions are not affected.
* A job's first tick is the first one strictly after the moment the connector learnt of it: a
  function deployed at 10:00:30 with ``@hourly`` first runs at 11:00.
* Catch-up (``catchup_window``, default 0): when the connector starts, each job's most recent tick
  fires once if it is at most ``catchup_window`` old — a tick missed while no cron connector ran.
  Older missed ticks are not replayed (several missed ticks coalesce into at most one run), and
  a tick that already has a call record is not fired again (:mod:`.source`). With 0, ticks missed
  while nothing ran are skipped.
* While running, a tick is fired late rather than lost when the connector's loop was held up
  (a busy CPU, a paused process) by up to ``max(catchup_window, 60 s)``; beyond that, the ticks
  in between are skipped and logged, and the most recent one fires if within that bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from faasbus.connectors.cron.schedule import (
    CONCURRENCY_ANNOTATION,
    SCHEDULE_ANNOTATION,
    TIMEZONE_ANNOTATION,
    CronSpec,
    cron_spec,
)
from faasbus.connectors.sdk import FunctionRef, ScheduleError

__all__ = ["LATE_TOLERANCE", "Due", "Job", "JobTable"]

log = structlog.get_logger(__name__)

# How late a tick may still fire while the connector runs (event-loop stalls, a slow start of
# the tick's hand-off). A minute covers any stall a healthy process has.
LATE_TOLERANCE = timedelta(seconds=60)

Raw = tuple[str, str, str]


@dataclass
class Job:
    """One scheduled function and what the connector remembers of it."""

    ref: FunctionRef
    spec: CronSpec
    raw: Raw
    next_tick: datetime
    last_call: tuple[str, float] | None = None  # (call id, time.monotonic() of its hand-off)
    pending: int = 0  # hand-offs of this job still in progress


@dataclass(frozen=True)
class Due:
    """A tick to fire now."""

    job: Job
    tick: datetime
    catchup: bool = False


def _raw(annotations: dict[str, str]) -> Raw:
    return (
        annotations.get(SCHEDULE_ANNOTATION, ""),
        annotations.get(TIMEZONE_ANNOTATION, ""),
        annotations.get(CONCURRENCY_ANNOTATION, ""),
    )


class JobTable:
    """Scheduled functions by reference; see the module docstring for the policy."""

    def __init__(self, *, default_timezone: str = "UTC", catchup_window_s: float = 0.0) -> None:
        self._default_timezone = default_timezone
        self._catchup = timedelta(seconds=catchup_window_s)
        self._jobs: dict[FunctionRef, Job] = {}
        self._invalid: dict[FunctionRef, Raw] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, ref: FunctionRef) -> Job | None:
        return self._jobs.get(ref)

    def sync(
        self,
        functions: Iterable[tuple[FunctionRef, dict[str, str]]],
        now: datetime,
        *,
        initial: bool = False,
    ) -> list[Due]:
        """Follow the catalog; on the ``initial`` sync, return the catch-up ticks to fire."""
        catchups: list[Due] = []
        seen: set[FunctionRef] = set()
        for ref, found in functions:
            seen.add(ref)
            raw = _raw(found)
            current = self._jobs.get(ref)
            if current is not None and current.raw == raw:
                continue
            try:
                spec = cron_spec(found, default_timezone=self._default_timezone)
            except ScheduleError as exc:
                if self._invalid.get(ref) != raw:
                    log.warning(
                        "cron_schedule_invalid", function=ref.name, namespace=ref.namespace,
                        schedule=raw[0], error=exc.problem,
                    )  # fmt: skip
                    self._invalid[ref] = raw
                self._jobs.pop(ref, None)
                continue
            self._invalid.pop(ref, None)
            job = Job(ref, spec, raw, next_tick=spec.schedule.next_after(now))
            if current is not None:
                job.last_call = current.last_call
            self._jobs[ref] = job
            log.info("cron_job_scheduled", function=ref.name, namespace=ref.namespace,
                     schedule=raw[0], next_tick=job.next_tick.isoformat(),
                     forbid_overlap=spec.forbid_overlap)  # fmt: skip
            if initial and self._catchup > timedelta(0):
                latest = spec.schedule.latest_at_or_before(now)
                if now - latest <= self._catchup:
                    catchups.append(Due(job, latest, catchup=True))
        for gone in [ref for ref in self._jobs if ref not in seen]:
            del self._jobs[gone]
            log.info("cron_job_removed", function=gone.name, namespace=gone.namespace)
        for gone in [ref for ref in self._invalid if ref not in seen]:
            del self._invalid[gone]
        return catchups

    def due(self, now: datetime) -> list[Due]:
        """Ticks to fire at ``now``; advances each job past ``now``."""
        out: list[Due] = []
        bound = max(LATE_TOLERANCE, self._catchup)
        for job in self._jobs.values():
            if job.next_tick > now:
                continue
            schedule = job.spec.schedule
            latest = schedule.latest_at_or_before(now)
            if latest != job.next_tick:
                log.warning(
                    "cron_ticks_missed", function=job.ref.name, namespace=job.ref.namespace,
                    first_missed=job.next_tick.isoformat(),
                    firing=latest.isoformat() if now - latest <= bound else None,
                )  # fmt: skip
            if now - latest <= bound:
                out.append(Due(job, latest))
            job.next_tick = schedule.next_after(latest)
        return out

    def next_wake(self) -> datetime | None:
        return min((job.next_tick for job in self._jobs.values()), default=None)
