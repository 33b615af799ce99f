"""Cron schedules and the job table on a fixed clock: no waiting for real time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from faasbus.connectors.cron import JobTable, cron_spec, parse_schedule
from faasbus.connectors.sdk import FunctionRef, ScheduleError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_five_fields_run_in_utc_by_default() -> None:
    schedule = parse_schedule("*/15 9-17 * * mon-fri")
    assert schedule.next_after(utc(2024, 5, 3, 9, 7)) == utc(2024, 5, 3, 9, 15)
    # Friday 17:45 → Monday 09:00
    assert schedule.next_after(utc(2024, 5, 3, 17, 45)) == utc(2024, 5, 6, 9, 0)


@pytest.mark.parametrize("prefix", ["CRON_TZ", "TZ"])
def test_a_time_zone_prefix_is_honoured(prefix: str) -> None:
    schedule = parse_schedule(f"{prefix}=Europe/Berlin 0 9 * * *")
    # 09:00 in Berlin is 07:00 UTC in summer and 08:00 UTC in winter.
    assert schedule.next_after(utc(2024, 7, 1, 0, 0)) == utc(2024, 7, 1, 7, 0)
    assert schedule.next_after(utc(2024, 1, 15, 7, 59)) == utc(2024, 1, 15, 8, 0)
    assert schedule.next_after(utc(2024, 1, 15, 8, 0)).astimezone(BERLIN) == datetime(
        2024, 1, 16, 9, 0, tzinfo=BERLIN
    )


def test_the_prefix_wins_over_the_annotation_which_wins_over_the_default() -> None:
    spec = cron_spec(
        {"schedule": "TZ=America/New_York 0 12 * * *",
         "com.faasbus.schedule.timezone": "Europe/Berlin"},
        default_timezone="Asia/Tokyo",
    )  # fmt: skip
    assert spec.schedule.next_after(utc(2024, 1, 1)) == datetime(2024, 1, 1, 12, tzinfo=NEW_YORK)
    spec = cron_spec(
        {"schedule": "0 12 * * *", "com.faasbus.schedule.timezone": "Europe/Berlin"},
        default_timezone="Asia/Tokyo",
    )
    assert spec.schedule.next_after(utc(2024, 1, 1)) == utc(2024, 1, 1, 11, 0)
    spec = cron_spec({"schedule": "0 12 * * *"}, default_timezone="Asia/Tokyo")
    assert spec.schedule.next_after(utc(2024, 1, 1)) == utc(2024, 1, 1, 3, 0)


def test_daylight_saving_follows_croniter() -> None:
    schedule = parse_schedule("CRON_TZ=Europe/Berlin 30 2 * * *")
    # Spring forward (2024-03-31 02:00 → 03:00): 02:30 does not exist; it runs once at 03:00.
    assert schedule.next_after(utc(2024, 3, 30, 12, 0)) == datetime(
        2024, 3, 31, 3, 0, tzinfo=BERLIN
    )
    # Fall back (2024-10-27 03:00 → 02:00): 02:30 happens twice, and runs at both instants.
    first = schedule.next_after(utc(2024, 10, 26, 12, 0))
    second = schedule.next_after(first)
    assert first == utc(2024, 10, 27, 0, 30)  # 02:30 summer time
    assert second == utc(2024, 10, 27, 1, 30)  # 02:30 winter time
    assert schedule.next_after(second) == utc(2024, 10, 28, 1, 30)
    # A step schedule keeps real-time spacing through the repeated hour.
    every_half_hour = parse_schedule("CRON_TZ=Europe/Berlin */30 * * * *")
    tick, ticks = utc(2024, 10, 27, 0, 0), []
    for _ in range(4):
        tick = every_half_hour.next_after(tick)
        ticks.append(tick)
    assert [b - a for a, b in itertools.pairwise(ticks)] == [timedelta(minutes=30)] * 3


def test_descriptors_and_every_are_accepted() -> None:
    assert parse_schedule("@hourly").next_after(utc(2024, 1, 1, 10, 5)) == utc(2024, 1, 1, 11)
    assert parse_schedule("@daily").next_after(utc(2024, 1, 1, 10, 5)) == utc(2024, 1, 2)
    assert parse_schedule("@weekly").next_after(utc(2024, 1, 1, 10)) == utc(2024, 1, 7)
    every = parse_schedule("@every 1m30s")
    assert every.every_s == 90
    # Aligned to the Unix epoch, so every connector computes the same ticks.
    assert every.next_after(utc(2024, 1, 1, 0, 0, 1)) == utc(2024, 1, 1, 0, 1, 30)
    assert every.next_after(utc(2024, 1, 1, 0, 1, 30)) == utc(2024, 1, 1, 0, 3, 0)
    assert every.previous_before(utc(2024, 1, 1, 0, 3, 0)) == utc(2024, 1, 1, 0, 1, 30)
    assert every.latest_at_or_before(utc(2024, 1, 1, 0, 3, 0)) == utc(2024, 1, 1, 0, 3, 0)
    assert parse_schedule("@every 1500ms").every_s == 1
    assert parse_schedule("@every 200ms").every_s == 1
    cron = parse_schedule("0 * * * *")
    assert cron.latest_at_or_before(utc(2024, 1, 1, 10, 0)) == utc(2024, 1, 1, 10, 0)
    assert cron.latest_at_or_before(utc(2024, 1, 1, 10, 59)) == utc(2024, 1, 1, 10, 0)


@pytest.mark.parametrize(
    "schedule",
    ["", "not a cron", "* * * *", "* * * * * *", "61 * * * *", "0 0 30 2 *", "@reboot",
     "@every", "@every soon", "@every 0s", "CRON_TZ=Mars/Olympus 0 9 * * *", "TZ=Europe/Berlin"],
)  # fmt: skip
def test_invalid_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(ScheduleError):
        cron_spec({"schedule": schedule})


def test_concurrency_and_time_zone_annotations_are_checked() -> None:
    assert cron_spec({"schedule": "@hourly"}).forbid_overlap is False
    spec = cron_spec({"schedule": "@hourly", "com.faasbus.schedule.concurrency": "Forbid"})
    assert spec.forbid_overlap is True
    with pytest.raises(ScheduleError, match="allow or forbid"):
        cron_spec({"schedule": "@hourly", "com.faasbus.schedule.concurrency": "sometimes"})
    with pytest.raises(ScheduleError, match="time zone"):
        cron_spec({"schedule": "@hourly", "com.faasbus.schedule.timezone": "Nowhere/City"})


FN = FunctionRef("openfaas-fn", "job")


def test_a_job_first_fires_at_its_next_tick_and_late_ticks_coalesce() -> None:
    table = JobTable()
    assert table.sync([(FN, {"schedule": "@hourly"})], utc(2024, 1, 1, 10, 0, 30)) == []
    assert table.due(utc(2024, 1, 1, 10, 59, 59)) == []
    [due] = table.due(utc(2024, 1, 1, 11, 0, 0, 1000))
    assert due.tick == utc(2024, 1, 1, 11)
    assert table.due(utc(2024, 1, 1, 11, 0, 1)) == []  # fired once
    # The loop was held up for 30 s past the tick: it still fires, late.
    [due] = table.due(utc(2024, 1, 1, 12, 0, 30))
    assert due.tick == utc(2024, 1, 1, 12)
    # Asleep for hours: the ticks in between are skipped, not replayed.
    assert table.due(utc(2024, 1, 1, 16, 30)) == []
    [due] = table.due(utc(2024, 1, 1, 17, 0, 5))
    assert due.tick == utc(2024, 1, 1, 17)


def test_catch_up_fires_the_latest_missed_tick_once_within_the_window() -> None:
    now = utc(2024, 1, 1, 10, 4)
    assert JobTable().sync([(FN, {"schedule": "@hourly"})], now, initial=True) == []
    within = JobTable(catchup_window_s=300)
    [due] = within.sync([(FN, {"schedule": "@hourly"})], now, initial=True)
    assert (due.tick, due.catchup) == (utc(2024, 1, 1, 10, 0), True)
    outside = JobTable(catchup_window_s=180)
    assert outside.sync([(FN, {"schedule": "@hourly"})], now, initial=True) == []
    # Only when the connector starts: a function deployed later waits for its next tick.
    later = JobTable(catchup_window_s=300)
    later.sync([], now, initial=True)
    assert later.sync([(FN, {"schedule": "@hourly"})], now) == []


def test_an_invalid_schedule_is_skipped_and_logged_once_per_change() -> None:
    other = FunctionRef("openfaas-fn", "other")
    table = JobTable()
    now = utc(2024, 1, 1, 10, 0, 30)
    functions = [(FN, {"schedule": "every minute"}), (other, {"schedule": "* * * * *"})]
    with capture_logs() as logs:
        for _ in range(3):
            table.sync(functions, now)
        assert table.get(FN) is None
        assert table.get(other) is not None
        assert [d.job.ref for d in table.due(utc(2024, 1, 1, 10, 1))] == [other]
        table.sync([(FN, {"schedule": "every hour"}), functions[1]], now)
        table.sync([(FN, {"schedule": "every hour"}), functions[1]], now)
        table.sync([(FN, {"schedule": "@hourly"}), functions[1]], now)
    invalid = [entry for entry in logs if entry["event"] == "cron_schedule_invalid"]
    assert [entry["schedule"] for entry in invalid] == ["every minute", "every hour"]
    assert table.get(FN) is not None
