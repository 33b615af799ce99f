"""Faults: a replica killed with -9 comes back; a provider killed with -9 comes back serving."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from faasbus.bus import Bus, Endpoint
from tests.provider.conftest import assert_clean_log, ready_endpoints
from tests.provider.helpers import HANDLER_ECHO_HTTP, Functions, ProviderProcess, build


def _alive(pid: int) -> bool:
    try:
        with Path(f"/proc/{pid}/stat").open() as handle:
            return handle.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


async def _wait_for(predicate: Any, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_replica_killed_is_restarted_and_republished(
    functions: Functions, bus: Bus, unique_name: str
) -> None:
    await functions.deploy({"service": unique_name, "envProcess": "cat"})
    await functions.wait_available(unique_name, 1)
    [before] = await _wait_for(lambda: ready_endpoints(bus, unique_name))
    os.kill(before.pid, signal.SIGKILL)

    async def replaced() -> list[Endpoint]:
        return [e for e in await ready_endpoints(bus, unique_name) if e.pid != before.pid]

    [after] = await _wait_for(replaced)
    assert after.instance == before.instance  # the same replica, restarted
    assert after.url != before.url or after.pid != before.pid
    status = await functions.wait_available(unique_name, 1)
    assert status["restarts"] >= 1
    assert "exited with code -9" in status["lastError"] or "code" in status["lastError"]
    assert await functions.invoke(unique_name, b"back") == (200, b"back")


async def test_provider_killed_and_restarted_serves_again(
    provider_factory: Any, state_dir: Path, bus: Bus, unique_name: str
) -> None:
    first = provider_factory(state_dir)
    image = build(state_dir, unique_name, HANDLER_ECHO_HTTP)
    host_command = f"{unique_name}-cat"
    async with aiohttp.ClientSession() as http:
        functions = Functions(http, first)
        try:
            await functions.deploy({"service": unique_name, "image": image})
            await functions.deploy({"service": host_command, "envProcess": "cat"})
            await functions.wait_available(unique_name, 1)
            await functions.wait_available(host_command, 1)
            old = await ready_endpoints(bus, unique_name) + await ready_endpoints(bus, host_command)
            assert len(old) == 2
            first.kill()

            # No replica of the dead provider keeps running (it would serve stale code).
            async def gone() -> bool:
                return not any(_alive(e.pid) for e in old)

            await _wait_for(gone)

            second = provider_factory(state_dir)
            functions.provider = second
            await functions.wait_available(unique_name, 1)
            await functions.wait_available(host_command, 1)
            code, body = await functions.invoke(unique_name, b"after restart")
            assert code == 200
            assert b"after restart" in body
            assert await functions.invoke(host_command, b"cat") == (200, b"cat")
            fresh = await ready_endpoints(bus, unique_name) + await ready_endpoints(
                bus, host_command
            )
            assert {e.pid for e in fresh}.isdisjoint({e.pid for e in old})
            assert all(e.provider.endswith(f":{second.pid}") for e in fresh)
            # Logs outlive the replicas and the provider that wrote them.
            old_instance = next(e.instance for e in old if e.function == unique_name)
            url = f"{second.url}/system/logs?name={unique_name}&instance={old_instance}"
            async with http.get(url) as response:
                assert response.status == 200
                assert "faasbus-watchdog listening on" in await response.text()
        finally:
            await functions.cleanup()


async def test_orphans_of_a_dead_provider_are_stopped(
    provider_factory: Any, state_dir: Path
) -> None:
    """A replica that outlived its provider (it ignored SIGTERM) is killed by the next one."""
    orphan = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"],
        start_new_session=True,
    )  # fmt: skip
    try:
        fields = Path(f"/proc/{orphan.pid}/stat").read_text().rpartition(")")[2].split()
        record = {
            "instance": "ghost-abc123", "namespace": "openfaas-fn", "function": "ghost",
            "pid": orphan.pid, "start_ticks": int(fields[19]),
            "provider_pid": 1 << 22, "provider_start_ticks": 1, "cgroup": "",
        }  # fmt: skip
        records = state_dir / "run" / "replicas"
        records.mkdir(parents=True)
        (records / "ghost-abc123.json").write_text(json.dumps(record))
        provider = provider_factory(state_dir, FAASBUS_REPLICA_STOP_GRACE="1s")
        assert orphan.wait(timeout=30) == -signal.SIGKILL
        assert not (records / "ghost-abc123.json").exists()
        assert "orphan_replica_kill" in provider.log_text
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_a_provider_stopped_right_after_it_started_exits_cleanly(
    nats_url: str, tmp_path: Path
) -> None:
    # A stop while the store watch is still being set up used to wait out the bus drain (a
    # subscription queue nobody reads never empties) and log a traceback when that was cut short.
    for round_ in range(5):
        provider = ProviderProcess(nats_url, tmp_path / f"state-{round_}").start()
        assert provider.stop() == 0, provider.log_text[-4000:]
        assert_clean_log(provider)
