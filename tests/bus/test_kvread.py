"""Listing a bucket as of now: every key written before the call is in it, deleted keys are not."""

from __future__ import annotations

import asyncio

from faasbus.bus import Bus, current_entries, current_keys, names


async def test_a_key_written_just_before_a_listing_is_always_in_it(
    bus: Bus, unique_name: str
) -> None:
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    prefix = f"{unique_name}."
    for n in range(60):  # the watch-based listing missed such a key now and then
        await kv.put(f"{prefix}f{n}", b"{}")
        listed = await current_entries(bus.js, kv, names.FUNCTIONS_BUCKET, prefix=prefix)
        assert {entry.key for entry in listed} == {f"{prefix}f{i}" for i in range(n + 1)}


async def test_deleted_and_purged_keys_are_left_out(bus: Bus, unique_name: str) -> None:
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    prefix = f"{unique_name}."
    await asyncio.gather(*(kv.put(f"{prefix}{key}", b"{}") for key in ("a", "b", "c")))
    await kv.delete(f"{prefix}a")
    await kv.purge(f"{prefix}b")

    entries = await current_entries(bus.js, kv, names.FUNCTIONS_BUCKET, prefix=prefix)

    assert [entry.key for entry in entries] == [f"{prefix}c"]
    assert f"{prefix}c" in await current_keys(bus.js, names.FUNCTIONS_BUCKET, prefix=prefix)


async def test_a_prefix_keeps_other_namespaces_out(bus: Bus, unique_name: str) -> None:
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    await kv.put(f"{unique_name}-x.fn", b"{}")
    await kv.put(f"{unique_name}.fn", b"{}")

    keys = await current_keys(bus.js, names.FUNCTIONS_BUCKET, prefix=f"{unique_name}.")

    assert keys == [f"{unique_name}.fn"]
