"""Call records, callback URL policy and the live function catalog, on a real nats-server."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from faasbus.bus import (
    Bus,
    CallbackUrlError,
    CallRecord,
    CallState,
    CallStore,
    FunctionCatalog,
    check_callback_url,
    is_valid_call_id,
    names,
)


async def test_call_record_updates_are_compare_and_set(bus: Bus, unique_name: str) -> None:
    store = await CallStore.open(bus.js)
    call_id = uuid.uuid4().hex
    queued = CallRecord(call_id=call_id, function=unique_name, namespace="openfaas-fn")
    await store.put(queued)

    async def bump(_: int) -> None:
        await store.update(
            call_id, lambda r: CallRecord(**{**r.__dict__, "attempts": r.attempts + 1}),
            create=queued,
        )  # fmt: skip

    await asyncio.gather(*(bump(i) for i in range(8)))
    record = await store.get(call_id)
    assert record is not None
    assert record.attempts == 8  # no update lost to a concurrent writer
    assert record.state is CallState.QUEUED
    assert json.loads(record.to_json())["state"] == "queued"
    assert await store.get("never-written") is None


async def test_results_are_kept_in_the_object_store(bus: Bus) -> None:
    store = await CallStore.open(bus.js)
    call_id = uuid.uuid4().hex
    await store.put_result(call_id, b"x" * 300_000)
    assert await store.get_result(call_id) == b"x" * 300_000
    assert await store.get_result("nope") is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [("ftp://h/x", "http or https"), ("http://169.254.169.254/latest", "metadata"),
     ("http://[fe80::1]/", "link-local"), ("http://metadata.google.internal/", "metadata"),
     ("http:///nohost", "no host")],
)  # fmt: skip
def test_callback_urls_refused(url: str, problem: str) -> None:
    with pytest.raises(CallbackUrlError, match=problem):
        check_callback_url(url)


def test_callback_urls_allowed() -> None:
    assert check_callback_url("http://127.0.0.1:9000/cb") == "http://127.0.0.1:9000/cb"
    assert check_callback_url("http://169.254.169.254/", allow_link_local=True)


def test_call_ids() -> None:
    assert is_valid_call_id(str(uuid.uuid4()))
    assert not is_valid_call_id("a.b")
    assert not is_valid_call_id("a b")
    assert not is_valid_call_id("")


async def test_catalog_follows_deploys_and_deletes(bus: Bus, unique_name: str) -> None:
    kv = await bus.js.key_value(names.FUNCTIONS_BUCKET)
    key = names.function_key("openfaas-fn", unique_name)
    changed = asyncio.Event()
    async with FunctionCatalog(bus) as catalog:
        catalog.on_change(changed.set)
        await kv.put(
            key, json.dumps({"service": unique_name, "annotations": {"topic": "a"}}).encode()
        )
        await asyncio.wait_for(changed.wait(), 5)
        assert catalog.annotations("openfaas-fn", unique_name) == {"topic": "a"}
        changed.clear()
        await kv.delete(key)
        await asyncio.wait_for(changed.wait(), 5)
        assert catalog.get("openfaas-fn", unique_name) is None
