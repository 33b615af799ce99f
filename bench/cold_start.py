"""Cold start of a built python3-http function on the process provider, and idle replica memory.

What it measures (printed as figures; docs/benchmarks.md records a run):

1. scale API → first response: ``POST /system/scale-function/NAME {"replicas": 1}`` on a function
   at zero, then at once a request to ``/function/NAME`` on the provider (held until the replica
   is ready); time from sending the scale request to the complete 200 response.
2. bus scale-up → first response, the path faasbus's gateway and queue workers take: an
   ``EndpointTable.acquire`` on a function at zero sends one scale-up request on the bus, waits for
   the endpoint record, then the request goes straight to the replica.
3. idle memory of one python3-http replica (the watchdog process with the handler imported),
   read from /proc after it served a request and sat idle: RSS, and USS (its private pages; the
   rest of RSS is shared library and interpreter pages that several replicas share).
4. for reference, the floor the provider cannot go below without pre-started processes: the
   bundle's Python starting ``faasbus.watchdog`` until it prints its announce line.

Each cold start is repeated (``--runs``, default 10) with the function scaled back to zero and its
process gone in between; the median, min and max are printed. Everything runs on 127.0.0.1 with
its own nats-server and state directory in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

from faasbus.bus import (
    BusSettings,
    EndpointTable,
    NatsServer,
    NatsServerOptions,
    connect,
    declare_bus,
)
from faasbus.provider import build_bundle

HANDLER = """
def handle(event, context):
    return {"statusCode": 200, "body": "hello " + event.body.decode(),
            "headers": {"Content-Type": "text/plain"}}
"""
NAME = "cold"
_ANNOUNCE = re.compile(r"faasbus-provider listening on (\S+):(\d+)")


class Provider:
    def __init__(self, nats_url: str, state: Path) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "port": "0",
            "FAASBUS_STATE_DIR": str(state),
            "FAASBUS_NATS_URL": nats_url,
            "FAASBUS_REPLICA_STOP_GRACE": "5s",
            "FAASBUS_LOG_LEVEL": "warning",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "faasbus.provider"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        match = _ANNOUNCE.search(line)
        if match is None:
            raise RuntimeError(f"provider did not start: {line!r}")
        self.url = f"http://{match.group(1)}:{match.group(2)}"
        stdout = self.process.stdout
        threading.Thread(target=stdout.read, daemon=True).start()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        if self.process.stdout is not None:
            self.process.stdout.close()


async def _status(http: aiohttp.ClientSession, url: str) -> dict[str, object]:
    async with http.get(f"{url}/system/function/{NAME}") as response:
        body: dict[str, object] = await response.json()
        return body


async def _wait_available(http: aiohttp.ClientSession, url: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (await _status(http, url))["availableReplicas"] == count:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"availableReplicas never reached {count}")


def _replica_pids() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"FAASBUS_FUNCTION={NAME}".encode() in environ and b"mode=python" in environ:
            found.append(int(proc.name))
    return found


async def _scale_to_zero(http: aiohttp.ClientSession, url: str) -> None:
    await _scale(http, url, 0)
    await _wait_available(http, url, 0)
    deadline = time.monotonic() + 30
    while _replica_pids() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # let the machine settle between runs


async def _scale(http: aiohttp.ClientSession, url: str, replicas: int) -> None:
    body = {"serviceName": NAME, "replicas": replicas}
    async with http.post(f"{url}/system/scale-function/{NAME}", json=body) as response:
        await response.read()
        if response.status != 202:
            raise RuntimeError(f"scale answered {response.status}")


async def _cold_via_scale_api(http: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    await _scale(http, url, 1)
    async with http.post(f"{url}/function/{NAME}", data=b"cold") as response:
        body = await response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200 or body != b"hello cold":
        raise RuntimeError(f"unexpected answer {response.status} {body!r}")
    return elapsed


async def _cold_via_bus(http: aiohttp.ClientSession, table: EndpointTable) -> float:
    started = time.perf_counter()
    async with (
        table.acquire("openfaas-fn", NAME, wait_s=30) as endpoint,
        http.post(endpoint.url, data=b"cold") as response,
    ):
        body = await response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200 or body != b"hello cold":
        raise RuntimeError(f"unexpected answer {response.status} {body!r}")
    return elapsed


def _memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, USS) in KiB from /proc/PID/smaps_rollup."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        fields[key] = int(rest.split()[0])
    return fields["Rss"], fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def _watchdog_alone(bundle: Path, runs: int) -> list[float]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "port": "0",
        "mode": "python",
        "FAASBUS_HANDLER": str(bundle / "function" / "handler.py"),
        "FAASBUS_TEMPLATE": "python3-http",
    }
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(bundle / "venv" / "bin" / "python"), "-m", "faasbus.watchdog"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        process.stdout.readline()
        samples.append(time.perf_counter() - started)
        process.kill()
        process.wait()
        process.stdout.close()
    return samples


def _summary(label: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    print(
        f"{label}: median {statistics.median(ms):.0f} ms, min {ms[0]:.0f} ms, "
        f"max {ms[-1]:.0f} ms over {len(ms)} runs"
    )


async def run(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="faasbus-cold-") as folder:
        root = Path(folder)
        handler = root / "src" / NAME
        handler.mkdir(parents=True)
        (handler / "handler.py").write_text(HANDLER)
        (handler / "requirements.txt").write_text("")
        state = root / "state"
        built = time.perf_counter()
        bundle = build_bundle(NAME, f"{NAME}:latest", "python3-http", handler, state)
        print(f"build_bundle: {(time.perf_counter() - built) * 1000:.0f} ms (empty requirements)")
        with NatsServer(NatsServerOptions(store_dir=root / "nats")) as server:
            settings = BusSettings(nats_url=server.url)
            bus = await connect(settings, name="bench-cold-start")
            await declare_bus(bus.js, settings)
            provider = Provider(server.url, state)
            try:
                async with aiohttp.ClientSession() as http, EndpointTable(bus) as table:
                    deploy = {
                        "service": NAME,
                        "image": f"{NAME}:latest",
                        "labels": {"com.openfaas.scale.zero": "true"},
                    }
                    async with http.post(f"{provider.url}/system/functions", json=deploy) as r:
                        assert r.status == 202, await r.text()
                    await _wait_available(http, provider.url, 1)
                    async with http.post(f"{provider.url}/function/{NAME}", data=b"x") as r:
                        await r.read()
                    await asyncio.sleep(2)
                    pids = _replica_pids()
                    memory = [_memory_kib(pid) for pid in pids]
                    await _scale_to_zero(http, provider.url)

                    # Interleaved so that the machine's load (2 shared cores) hits all three
                    # alike; the overhead figures are per-run differences to the reference.
                    alone: list[float] = []
                    via_api: list[float] = []
                    via_bus: list[float] = []
                    for _ in range(runs):
                        alone.extend(_watchdog_alone(bundle, 1))
                        via_api.append(await _cold_via_scale_api(http, provider.url))
                        await _scale_to_zero(http, provider.url)
                        via_bus.append(await _cold_via_bus(http, table))
                        await _scale_to_zero(http, provider.url)
                    _summary("cold start, scale API -> first response (provider proxy)", via_api)
                    _summary("cold start, bus scale-up -> first response (gateway path)", via_bus)
                    _summary("reference: watchdog alone, exec -> announce line", alone)
                    _summary("provider overhead, proxy path (run minus reference)",
                             [a - b for a, b in zip(via_api, alone, strict=True)])  # fmt: skip
                    _summary("provider overhead, gateway path (run minus reference)",
                             [a - b for a, b in zip(via_bus, alone, strict=True)])  # fmt: skip
                    for pid, (rss, uss) in zip(pids, memory, strict=True):
                        print(f"idle python3-http replica: RSS {rss / 1024:.1f} MiB, "
                              f"USS {uss / 1024:.1f} MiB (pid {pid})")  # fmt: skip
                    async with http.delete(
                        f"{provider.url}/system/functions", json={"functionName": NAME}
                    ) as r:
                        await r.read()
            finally:
                provider.stop()
                await bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(run(args.runs))


if __name__ == "__main__":
    main()
