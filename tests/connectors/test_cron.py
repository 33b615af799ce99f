"""The cron connector end to end: real connector processes, a real queue worker, real replicas."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp import web

from tests.connectors.conftest import StartConnector
from tests.connectors.helpers import Functions, own_bus
from tests.queue_worker.helpers import Worker

pytestmark = pytest.mark.slow

CRON = "cron-function"


def _tick(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


async def test_two_cron_connectors_fire_each_tick_exactly_once(
    functions: Functions, worker: Worker, start_connector: StartConnector, unique_name: str
) -> None:
    await functions.deploy(unique_name, topic=CRON, annotations={"schedule": "@every 1s"})
    first, second = await asyncio.gather(start_connector("cron"), start_connector("cron"))
    await asyncio.sleep(7)  # the observation window: about seven ticks
    calls = functions.of(unique_name)
    ticks = Counter(call.headers["X-Cron-Scheduled-Time"] for call in calls)
    assert len(ticks) >= 5, f"too few ticks: {sorted(ticks)}"
    assert max(ticks.values()) == 1, f"a tick ran twice: {ticks}"
    assert len({call.headers["X-Call-Id"] for call in calls}) == len(calls)
    # One tick a second, none missing in between.
    ordered = sorted(_tick(stamp) for stamp in ticks)
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(ordered)} == {1.0}
    for call in calls:
        assert call.body == b""
        assert call.headers["X-Topic"] == CRON
        assert call.headers["X-Connector"] == "cron-connector"
    # Both connectors were firing the same ticks; the bus kept one of each.
    fired = [first.events("cron_fired"), second.events("cron_fired")]
    assert all(len(events) >= 5 for events in fired), [len(e) for e in fired]
    assert any(event["duplicate"] for events in fired for event in events)


async def test_an_invalid_schedule_is_logged_once_and_skipped_and_others_keep_firing(
    functions: Functions, worker: Worker, start_connector: StartConnector, unique_name: str
) -> None:
    bad, good = f"{unique_name}-bad", f"{unique_name}-good"
    await functions.deploy(bad, topic=CRON, annotations={"schedule": "every now and then"})
    await functions.deploy(good, topic=CRON, annotations={"schedule": "@every 1s"})
    connector = await start_connector("cron", rebuild_interval="1s")
    await functions.wait_calls(good, 3, timeout=20)  # three ticks and at least two resyncs
    assert functions.of(bad) == []
    invalid = connector.events("cron_schedule_invalid")
    assert [(e["function"], e["schedule"]) for e in invalid] == [(bad, "every now and then")]
    # Fixed at runtime: it starts firing without a restart.
    await functions.deploy(bad, topic=CRON, annotations={"schedule": "@every 1s"})
    await functions.wait_calls(bad, 1, timeout=20)
    assert len(connector.events("cron_schedule_invalid")) == 1
    # Deleted at runtime: it stops firing (a tick in flight at the delete may still land).
    await functions.remove(good)
    removed = await connector.wait_event("cron_job_removed")
    assert [e["function"] for e in removed] == [good]
    await asyncio.sleep(1.0)
    after_delete = len(functions.of(good))
    await functions.wait_calls(bad, len(functions.of(bad)) + 2, timeout=20)
    assert len(functions.of(good)) == after_delete


async def test_forbid_skips_ticks_while_the_previous_run_is_running(
    functions: Functions, worker: Worker, start_connector: StartConnector, unique_name: str
) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(1.5)
        return web.Response(text="done")

    await functions.deploy(
        unique_name, topic=CRON, behaviour=slow,
        annotations={"schedule": "@every 1s", "com.faasbus.schedule.concurrency": "forbid"},
    )  # fmt: skip
    connector = await start_connector("cron")
    await functions.wait_calls(unique_name, 2, timeout=20)
    await functions.wait_for(lambda: all(c.finished for c in functions.of(unique_name)[:2]))
    calls = functions.of(unique_name)
    for earlier, later in itertools.pairwise(calls):
        assert later.started >= earlier.finished, "runs overlapped"
    skipped = connector.events("cron_tick_skipped")
    assert skipped
    assert {event["reason"] for event in skipped} == {"previous_running"}


async def test_a_tick_missed_before_start_fires_once_within_the_catchup_window(
    functions: Functions, worker: Worker, start_connector: StartConnector, unique_name: str
) -> None:
    # Every minute: the latest tick is at most 60 s old, inside a 2-minute window.
    await functions.deploy(unique_name, topic=CRON, annotations={"schedule": "* * * * *"})
    # Both connectors must start inside one minute, or the first one's tick is a live one.
    to_next_minute = 60 - time.time() % 60
    if to_next_minute < 25:
        await asyncio.sleep(to_next_minute + 0.5)
    started = time.time()
    first = await start_connector("cron", catchup_window="2m")
    [call] = await functions.wait_calls(unique_name, 1, timeout=20)
    tick = _tick(call.headers["X-Cron-Scheduled-Time"]).timestamp()
    assert started - 61 <= tick <= started
    # A second connector starting later does not run that tick again.
    second = await start_connector("cron", catchup_window="2m")
    await asyncio.sleep(1.0)
    if time.time() < tick + 60:  # unless the next minute's tick came meanwhile
        assert len(functions.of(unique_name)) == 1
    caught_up = first.events("cron_fired")
    assert [e["tick"] for e in caught_up if e["catchup"] and e["function"] == unique_name] == [
        call.headers["X-Cron-Scheduled-Time"]
    ]
    assert [e["function"] for e in second.events("cron_catchup_already_fired")] == [unique_name]


async def test_ticks_during_a_bus_outage_fire_late_but_none_is_lost(
    start_connector: StartConnector, unique_name: str, tmp_path: Path
) -> None:
    async with own_bus(tmp_path / "bus-store", "cron-outage") as own:
        functions = own.functions
        await functions.deploy(unique_name, topic=CRON, annotations={"schedule": "@every 1s"})
        own.start_worker()
        await start_connector("cron", url=own.server.url)
        await functions.wait_calls(unique_name, 2)
        own.server.stop()
        await asyncio.sleep(3.0)  # the outage: three ticks
        own.server.start()
        seen = len(functions.of(unique_name))
        await functions.wait_calls(unique_name, seen + 5, timeout=30)
    # One invocation per tick. (The queue worker may run a call twice when the bus went
    # away between the run and its ack: at least once, same call id — not a second tick.)
    ids: dict[str, set[str]] = {}
    for call in functions.of(unique_name):
        ids.setdefault(call.headers["X-Cron-Scheduled-Time"], set()).add(call.headers["X-Call-Id"])
    assert all(len(found) == 1 for found in ids.values()), f"a tick fired twice: {ids}"
    ordered = sorted(_tick(stamp) for stamp in ids)
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(ordered)}
    assert gaps == {1.0}, f"ticks were lost: {[t.isoformat() for t in ordered]}"
