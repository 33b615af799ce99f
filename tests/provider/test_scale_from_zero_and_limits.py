"""The provider as gateways and workers use it: scale-up bus requests; and enforced limits."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from faasbus.bus import Bus, EndpointTable, NoReplicaError
from tests.provider.helpers import Functions


async def test_scale_up_request_wakes_a_function_at_zero(
    functions: Functions, bus: Bus, unique_name: str
) -> None:
    await functions.deploy(
        {"service": unique_name, "envProcess": "cat", "labels": {"com.openfaas.scale.zero": "1"}}
    )
    await functions.wait_available(unique_name, 1)
    assert await functions.scale(unique_name, 0) == 202
    await functions.wait_available(unique_name, 0)

    async with EndpointTable(bus) as table:
        async with (
            table.acquire("openfaas-fn", unique_name, wait_s=30) as endpoint,
            aiohttp.ClientSession() as http,
            http.post(endpoint.url, data=b"woken") as response,
        ):
            assert response.status == 200
            assert await response.read() == b"woken"
        assert (await functions.status(unique_name))["replicas"] == 1

        with pytest.raises(NoReplicaError) as caught:
            async with table.acquire("openfaas-fn", f"{unique_name}-nope", wait_s=10):
                pass
        assert caught.value.not_found


async def test_limits_are_applied_to_replicas(functions: Functions, unique_name: str) -> None:
    """Memory becomes RLIMIT_AS here (no delegated cgroup v2 on this machine), CPU nice 10."""
    await functions.deploy(
        {
            "service": unique_name,
            "envProcess": "cat",
            "limits": {"memory": "256Mi", "cpu": "500m"},
        }
    )
    await functions.wait_available(unique_name, 1)
    async with functions.http.get(f"{functions.provider.url}/system/info") as response:
        mechanism = (await response.json())["provider"]["limits"]
    procs = Path("/proc")
    pids = [
        int(p.name)
        for p in procs.iterdir()
        if p.name.isdigit() and _environ_has(p, f"FAASBUS_FUNCTION={unique_name}")
    ]
    assert pids, "replica process not found"
    if mechanism == "rlimit":
        limits = (procs / str(pids[0]) / "limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max address space"))
        assert str(256 * 1024 * 1024) in line
        nice = int((procs / str(pids[0]) / "stat").read_text().rpartition(")")[2].split()[16])
        assert nice == 10
    else:
        cgroup = (procs / str(pids[0]) / "cgroup").read_text()
        assert "faasbus-" in cgroup
    assert await functions.invoke(unique_name, b"limited") == (200, b"limited")


def _environ_has(proc: Path, entry: str) -> bool:
    try:
        return entry.encode() in (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        return False
