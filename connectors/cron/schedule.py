"""Cron schedules: parsing what a function's annotations say and computing its ticks.

A function runs on a schedule when its ``topic`` includes ``cron-function`` and its annotation
``schedule`` is one of (REFERENCE.md section 4; the forms OpenFaaS's cron-connector accepts):

* five fields, ``minute hour day-of-month month day-of-week`` (``*/5 * * * *``,
  ``0 9 * * mon-fri``; ranges, lists, steps and names as croniter reads them);
* a descriptor: ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
  (``@midnight``), ``@hourly``;
* ``@every <duration>`` (``@every 10s``, ``@every 1m30s``): truncated to whole seconds, at least
  one second. Ticks are aligned to the Unix epoch (every multiple of the period since 1970-01-01
  UTC), not to when a connector started: that is what lets several cron connectors agree on each
  tick (OpenFaaS's library counts from its own start instead).

Time zone: a ``CRON_TZ=Area/City `` or ``TZ=Area/City `` prefix inside the schedule wins, then
the annotation ``com.faasbus.schedule.timezone``, then the connector's ``FAASBUS_CRON_TIMEZONE``
(default ``UTC``). Daylight-saving changes follow croniter's semantics, which faasbus adopts and
tests (``tests/connectors/test_cron_schedule.py``):

* spring forward — a wall-clock time inside the skipped hour (``30 2 * * *`` on the night clocks
  jump from 02:00 to 03:00) fires once, at the first instant after the gap (03:00 new time);
  schedules outside the gap are unaffected;
* fall back — a wall-clock time inside the repeated hour fires at *both* instants that show it
  (``30 2 * * *`` fires at 02:30 summer time and again an hour later at 02:30 winter time), and
  ``*/30 * * * *`` keeps firing every 30 minutes of real time through the repeated hour.
  Choose UTC, or a time outside 02:00-03:00, for a job that must run exactly once a day.

Ticks are instants (aware datetimes in UTC); a tick's identity is that instant, so both fall-back
occurrences are distinct ticks and each fires once across all connectors.

``com.faasbus.schedule.concurrency``: ``allow`` (default; a tick fires whatever the previous run
is doing) or ``forbid`` (a tick is skipped while the previous run's call is not final).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from faasbus.bus import parse_duration
from faasbus.connectors.sdk import ScheduleError

__all__ = [
    "CONCURRENCY_ANNOTATION",
    "CRON_TOPIC",
    "DESCRIPTORS",
    "SCHEDULE_ANNOTATION",
    "TIMEZONE_ANNOTATION",
    "CronSpec",
    "Schedule",
    "cron_spec",
    "parse_schedule",
]

CRON_TOPIC = "cron-function"
SCHEDULE_ANNOTATION = "schedule"
TIMEZONE_ANNOTATION = "com.faasbus.schedule.timezone"
CONCURRENCY_ANNOTATION = "com.faasbus.schedule.concurrency"

DESCRIPTORS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
_TZ_PREFIX = re.compile(r"^(?:CRON_TZ|TZ)=(\S+)\s+(\S.*)$")
_EVERY = "@every"


def _zone(name: str, schedule: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(schedule, f"unknown time zone {name!r}") from None


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: ``every_s`` > 0 for ``@every``, otherwise a cron ``expression``."""

    text: str
    expression: str
    zone: ZoneInfo
    every_s: int = 0

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment`` (an aware datetime), in UTC."""
        if self.every_s:
            k = math.floor(moment.timestamp() / self.every_s) + 1
            return datetime.fromtimestamp(k * self.every_s, UTC)
        found = croniter(self.expression, moment.astimezone(self.zone)).get_next(datetime)
        return found.astimezone(UTC)

    def previous_before(self, tick: datetime) -> datetime:
        """The last tick strictly before ``tick``, in UTC."""
        if self.every_s:
            k = math.ceil(tick.timestamp() / self.every_s) - 1
            return datetime.fromtimestamp(k * self.every_s, UTC)
        found = croniter(self.expression, tick.astimezone(self.zone)).get_prev(datetime)
        return found.astimezone(UTC)

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The most recent tick at or before ``moment``, in UTC."""
        previous = self.previous_before(moment)
        candidate = self.next_after(previous)
        return candidate if candidate <= moment else previous


def parse_schedule(
    text: str, *, timezone: str | None = None, default_timezone: str = "UTC"
) -> Schedule:
    """Parse ``text`` (a ``schedule`` annotation); raises :class:`ScheduleError`."""
    expression = " ".join(text.split())
    zone_name = timezone or default_timezone
    prefixed = _TZ_PREFIX.match(expression)
    if prefixed is not None:
        zone_name, expression = prefixed.group(1), prefixed.group(2)
    if not expression:
        raise ScheduleError(text, "empty schedule")
    zone = _zone(zone_name, text)
    if expression.startswith(_EVERY + " ") or expression == _EVERY:
        return Schedule(text, expression, zone, every_s=_every_seconds(text, expression))
    if expression.startswith("@"):
        if expression.lower() not in DESCRIPTORS:
            raise ScheduleError(text, f"unknown descriptor {expression!r}")
        expression = expression.lower()
    elif len(expression.split()) != 5:
        raise ScheduleError(text, "expected five fields: minute hour day-of-month month weekday")
    schedule = Schedule(text, expression, zone)
    try:
        # Proves the expression parses and ever fires (``0 0 30 2 *`` never does).
        schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))
    except (CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(text, str(exc) or type(exc).__name__) from None
    return schedule


def _every_seconds(text: str, expression: str) -> int:
    _, _, duration = expression.partition(" ")
    try:
        seconds = parse_duration(duration)
    except ValueError:
        raise ScheduleError(
            text, f"@every needs a duration such as 10s or 1m30s, not {duration!r}"
        ) from None
    if seconds <= 0:
        raise ScheduleError(text, "@every needs a positive duration")
    # OpenFaaS's cron library truncates to whole seconds and runs at least once a second.
    return max(int(seconds), 1)


@dataclass(frozen=True)
class CronSpec:
    """What a function's annotations ask of the cron connector."""

    schedule: Schedule
    forbid_overlap: bool = False


def cron_spec(annotations: dict[str, str], *, default_timezone: str = "UTC") -> CronSpec:
    """Read ``schedule``, the time-zone and concurrency annotations; :class:`ScheduleError`."""
    text = annotations.get(SCHEDULE_ANNOTATION, "")
    if not text.strip():
        raise ScheduleError(text, f"no {SCHEDULE_ANNOTATION!r} annotation")
    schedule = parse_schedule(
        text,
        timezone=annotations.get(TIMEZONE_ANNOTATION, "").strip() or None,
        default_timezone=default_timezone,
    )
    policy = annotations.get(CONCURRENCY_ANNOTATION, "allow").strip().lower() or "allow"
    if policy not in ("allow", "forbid"):
        raise ScheduleError(
            text, f"{CONCURRENCY_ANNOTATION} must be allow or forbid, not {policy!r}"
        )
    return CronSpec(schedule, forbid_overlap=policy == "forbid")
