"""The embedded nats-server and the idempotent declaration of the bus contract."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import nats.js.errors
import pytest

from faasbus.bus import (
    Bus,
    BusSettings,
    BusUnavailable,
    NatsServer,
    NatsServerOptions,
    configure_logging,
    connect,
    declare_bus,
    free_port,
    names,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_contract_streams_and_buckets_exist(bus: Bus) -> None:
    invoke = await bus.js.stream_info(names.INVOKE_STREAM)
    assert invoke.config.subjects == ["faas.invoke.>"]
    assert invoke.config.duplicate_window is not None
    assert invoke.config.duplicate_window >= 600
    assert (await bus.js.stream_info(names.DLQ_STREAM)).config.subjects == ["faas.dead.>"]
    logs = await bus.js.stream_info(names.LOGS_STREAM)
    assert logs.config.max_bytes == bus.settings.logs_max_bytes
    for bucket in (names.FUNCTIONS_BUCKET, names.ENDPOINTS_BUCKET, names.CALLS_BUCKET):
        kv = await bus.js.key_value(bucket)
        assert (await kv.status()).bucket == bucket
    await bus.js.object_store(names.PAYLOADS_BUCKET)


async def test_declaration_is_idempotent_and_converges(bus: Bus) -> None:
    await declare_bus(bus.js, bus.settings)  # a second component starting: no error
    changed = BusSettings(nats_url=bus.settings.nats_url, logs_max_bytes=128 * 1024 * 1024)
    try:
        await declare_bus(bus.js, changed)
        logs = await bus.js.stream_info(names.LOGS_STREAM)
        assert logs.config.max_bytes == 128 * 1024 * 1024
    finally:
        await declare_bus(bus.js, bus.settings)


async def test_invoke_stream_drops_duplicate_call_ids(bus: Bus, unique_name: str) -> None:
    subject = names.invoke_subject(names.DEFAULT_NAMESPACE, unique_name)
    first = await bus.js.publish(subject, b"x", headers={"Nats-Msg-Id": f"{unique_name}-1"})
    again = await bus.js.publish(subject, b"x", headers={"Nats-Msg-Id": f"{unique_name}-1"})
    assert not first.duplicate
    assert again.duplicate
    assert again.seq == first.seq


async def test_store_survives_a_kill(tmp_path: Path) -> None:
    server = NatsServer(NatsServerOptions(store_dir=tmp_path / "store"))
    server.start()
    try:
        settings = BusSettings(nats_url=server.url, connect_wait_s=5)
        async with await connect(settings, name="t") as bus:
            await declare_bus(bus.js, settings)
            await bus.js.publish(names.invoke_subject("ns", "fn"), b"kept")
        server.kill()
        assert server.pid is None
        server.start()  # same ports, same store
        async with await connect(settings, name="t") as bus:
            msg = await bus.js.get_last_msg(names.INVOKE_STREAM, names.invoke_subject("ns", "fn"))
            assert msg.data == b"kept"
    finally:
        server.stop()


def test_stop_is_idempotent_and_leaves_no_process(tmp_path: Path) -> None:
    server = NatsServer(NatsServerOptions(store_dir=tmp_path / "store")).start()
    pid = server.pid
    assert pid is not None
    assert _alive(pid)
    server.stop()
    server.stop()
    assert not _alive(pid)


async def test_connect_failure_names_the_url() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(BusUnavailable, match=url):
        await connect(BusSettings(nats_url=url, connect_wait_s=0.3), name="t")


def test_server_output_is_pumped_into_the_log(tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("test", stream=out)
    try:
        with NatsServer(NatsServerOptions(store_dir=tmp_path / "s")) as server:
            assert server.pid is not None
            os.kill(server.pid, signal.SIGHUP)  # a config reload makes the server log a line
    finally:
        configure_logging("pytest", stream=io.StringIO())
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    lines = [r["line"] for r in records if r.get("event") == "nats_server_output"]
    assert any("Server is ready" in line for line in lines)
    assert all(r["component"] == "test" for r in records)


async def test_unknown_bucket_is_reported_not_created(bus: Bus) -> None:
    with pytest.raises(nats.js.errors.BucketNotFoundError):
        await bus.js.key_value("faas_no_such_bucket")
