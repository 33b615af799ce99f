"""Benchmark of the sync path: a python3-http echo function through the gateway vs directly.

Starts everything itself and stops it: a nats-server (embedded, temporary store), one watchdog
replica in python mode with the python3-http template and an echo handler, its endpoint record in
``faas_endpoints`` (refreshed like the provider does), and the gateway as a subprocess on a free
port: by default twice, once with its lean replica client (``FAASBUS_UPSTREAM_CLIENT=pool``, the
default) and once with aiohttp's ``ClientSession`` for comparison. Then it measures requests/s and
p50/p99 latency at 1 and 50 connections, through each gateway and straight to the replica, in
the same run and interleaved (the machine is shared, so only ratios measured together mean
much), plus the CPU each process spent per request (from /proc), which noise disturbs less.

Load comes from ``wrk`` when installed (a separate C process), else from an aiohttp load
generator in a separate Python process (this script with ``--load``).

    .venv/bin/python bench/sync.py [--duration 8] [--rounds 3] [--connections 1,50]
                                   [--clients pool,aiohttp] [--python-load]

Prints a table and the two targets of issue 4: gateway req/s >= 50% of direct at 50 connections,
and gateway p50 - direct p50 <= 0.5 ms at 1 connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from faasbus.bus import (
    BusSettings,
    Endpoint,
    NatsServer,
    NatsServerOptions,
    configure_logging,
    connect,
    declare_bus,
    names,
    put_endpoint,
)

FUNCTION = "echo"
BODY = b'{"hello":"world"}'
HANDLER = """\
def handle(event, context):
    return {
        "statusCode": 200,
        "body": event.body,
        "headers": {"Content-Type": event.headers.get("Content-Type", "text/plain")},
    }
"""
WRK_SCRIPT = f"""\
wrk.method = "POST"
wrk.body = '{BODY.decode()}'
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass
class Result:
    target: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    replica_cpu_us: float
    gateway_cpu_us: float


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- processes


async def _pump(stream: asyncio.StreamReader | None, sink: list[str]) -> None:
    if stream is None:
        return
    while line := await stream.readline():
        sink.append(line.decode(errors="replace").rstrip())


@contextlib.asynccontextmanager
async def child(
    argv: list[str], env: dict[str, str], announce: str
) -> AsyncIterator[tuple[int, int]]:
    """Start a faasbus process with port 0, yield (port, pid), stop it at the end."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    stderr: list[str] = []
    stderr_pump = asyncio.create_task(_pump(process.stderr, stderr), name="bench-stderr")
    stdout_pump: asyncio.Task[None] | None = None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        match = re.fullmatch(rf"{announce} listening on [\d.]+:(\d+)", line.decode().strip())
        if match is None:
            await process.wait()
            raise RuntimeError(f"{argv} did not start: {line!r} {stderr[-5:]}")
        stdout_pump = asyncio.create_task(_pump(process.stdout, []), name="bench-stdout")
        yield int(match.group(1)), process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        for pump in (stderr_pump, stdout_pump):
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump


# ---------------------------------------------------------------- load


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


async def wrk(
    url: str, connections: int, duration: float, script: Path
) -> tuple[float, float, float]:
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(script), url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    text = out.decode()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.MULTILINE)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if rps is None or p50 is None or p99 is None or errors is not None:
        raise RuntimeError(f"wrk failed: {text} {err.decode()}")
    return float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1))


async def python_load(url: str, connections: int, duration: float) -> tuple[float, float, float]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--load", url, str(connections), str(duration),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    found = json.loads(out)
    return found["rps"], found["p50_ms"], found["p99_ms"]


async def _load_main(url: str, connections: int, duration: float) -> None:
    """The fallback load generator: ``connections`` keep-alive clients POSTing in a loop."""
    latencies: list[float] = []
    deadline = time.perf_counter() + duration
    connector = aiohttp.TCPConnector(limit=connections)

    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while (now := time.perf_counter()) < deadline:
                async with session.post(url, data=BODY) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"status {response.status}")
                latencies.append(time.perf_counter() - now)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    print(json.dumps({
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
    }))  # fmt: skip


# ---------------------------------------------------------------- the run


async def refresh(kv: object, endpoint: Endpoint) -> None:
    while True:
        await put_endpoint(kv, endpoint)  # type: ignore[arg-type]
        await asyncio.sleep(3)


async def run(args: argparse.Namespace) -> list[Result]:
    connections = [int(c) for c in args.connections.split(",")]
    use_wrk = shutil.which("wrk") is not None and not args.python_load
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    with (
        tempfile.TemporaryDirectory(prefix="faasbus-bench-") as tmp,
        NatsServer(NatsServerOptions(store_dir=Path(tmp) / "nats")) as nats_server,
    ):
        handler = Path(tmp) / "handler.py"
        handler.write_text(HANDLER)
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT)
        settings = BusSettings(nats_url=nats_server.url)
        bus = await connect(settings, name="bench")
        await declare_bus(bus.js, settings)
        kv = await bus.js.key_value(names.ENDPOINTS_BUCKET)
        python = [sys.executable, "-m"]
        replica_env = {
            "mode": "python",
            "FAASBUS_TEMPLATE": "python3-http",
            "FAASBUS_HANDLER": str(handler),
            "port": "0",
            "FAASBUS_LOCK_FILE": str(Path(tmp) / "lock"),
        }
        try:
            async with contextlib.AsyncExitStack() as stack:
                rport, rpid = await stack.enter_async_context(
                    child([*python, "faasbus.watchdog"], replica_env, "faasbus-watchdog")
                )
                endpoint = Endpoint(
                    namespace=names.DEFAULT_NAMESPACE,
                    function=FUNCTION,
                    instance="bench-0",
                    url=f"http://127.0.0.1:{rport}",
                    ready=True,
                    provider="bench",
                    started_at=time.time(),
                )
                refresher = asyncio.create_task(refresh(kv, endpoint), name="bench-refresh")
                stack.push_async_callback(_cancel, refresher)
                targets = {"direct": Target(f"http://127.0.0.1:{rport}/", None)}
                for client in clients:
                    env = {
                        "port": "0",
                        "FAASBUS_NATS_URL": nats_server.url,
                        "FAASBUS_UPSTREAM_CLIENT": client,
                    }
                    gport, gpid = await stack.enter_async_context(
                        child([*python, "faasbus.gateway"], env, "faasbus-gateway")
                    )
                    name = "gateway" if client == "pool" else f"gateway ({client} client)"
                    url = f"http://127.0.0.1:{gport}/function/{FUNCTION}"
                    targets[name] = Target(url, gpid)
                async with aiohttp.ClientSession() as session:
                    for target in targets.values():
                        async with session.post(target.url, data=BODY) as response:
                            assert response.status == 200, await response.text()
                            assert await response.read() == BODY
                return await measure(targets, rpid, connections, args, use_wrk, script)
        finally:
            await bus.close()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@dataclass
class Target:
    url: str
    gateway_pid: int | None


async def measure(
    targets: dict[str, Target],
    replica_pid: int,
    connections: list[int],
    args: argparse.Namespace,
    use_wrk: bool,
    script: Path,
) -> list[Result]:
    runs: dict[tuple[str, int], list[tuple[float, float, float, float, float]]] = {}
    for conns in connections:
        # Warm every path (connection pools, caches) before measuring.
        for target in targets.values():
            url = target.url
            await (wrk(url, conns, 2, script) if use_wrk else python_load(url, conns, 2))
        for _ in range(args.rounds):
            for name, target in targets.items():
                url = target.url
                load = (
                    wrk(url, conns, args.duration, script)
                    if use_wrk
                    else python_load(url, conns, args.duration)
                )
                pids = [replica_pid] + ([target.gateway_pid] if target.gateway_pid else [])
                before = [cpu_s(pid) for pid in pids]
                rps, p50, p99 = await load
                requests = rps * args.duration
                used = [
                    (cpu_s(pid) - b) / requests * 1e6 for pid, b in zip(pids, before, strict=True)
                ]
                sample = (rps, p50, p99, used[0], used[1] if len(used) > 1 else 0.0)
                runs.setdefault((name, conns), []).append(sample)
    results = []
    for (name, conns), samples in runs.items():
        results.append(Result(
            target=name,
            connections=conns,
            rps=statistics.median(s[0] for s in samples),
            p50_ms=statistics.median(s[1] for s in samples),
            p99_ms=statistics.median(s[2] for s in samples),
            replica_cpu_us=statistics.median(s[3] for s in samples),
            gateway_cpu_us=statistics.median(s[4] for s in samples),
        ))  # fmt: skip
    return results


def report(results: list[Result], args: argparse.Namespace, use_wrk: bool) -> None:
    by = {(r.target, r.connections): r for r in results}
    order = {name: index for index, name in enumerate(dict.fromkeys(r.target for r in results))}
    load = "wrk" if use_wrk else "aiohttp"
    print(f"load: {load}; {args.rounds} rounds of {args.duration:g}s per cell (median);"
          " POST of a 17-byte JSON body to a python3-http echo function")  # fmt: skip
    print()
    print("| path | connections | requests/s | p50 ms | p99 ms | replica CPU µs/req |"
          " gateway CPU µs/req |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in sorted(results, key=lambda r: (r.connections, order[r.target])):
        gateway_cpu = "-" if r.target == "direct" else f"{r.gateway_cpu_us:.0f}"
        print(f"| {r.target} | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f}"
              f" | {r.replica_cpu_us:.0f} | {gateway_cpu} |")  # fmt: skip
    print()
    high = max(c for _, c in by)
    low = min(c for _, c in by)
    for name in order:
        if name == "direct":
            continue
        ratio = by[name, high].rps / by["direct", high].rps
        added = by[name, low].p50_ms - by["direct", low].p50_ms
        print(f"{name}: requests/s at {high} connections = {ratio:.0%} of direct"
              f" (target >= 50%) {'PASS' if ratio >= 0.5 else 'FAIL'};"
              f" p50 added at {low} connection = {added:.3f} ms (target <= 0.5 ms)"
              f" {'PASS' if added <= 0.5 else 'FAIL'}")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        asyncio.run(_load_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per cell (median)")
    parser.add_argument("--connections", default="1,50")
    parser.add_argument("--python-load", action="store_true", help="use aiohttp, not wrk")
    parser.add_argument(
        "--clients",
        default="pool,aiohttp",
        help="gateways to measure, by FAASBUS_UPSTREAM_CLIENT (pool is the default)",
    )
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None and not args.python_load
    configure_logging("bench", level="warning")
    results = asyncio.run(run(args))
    report(results, args, use_wrk)


if __name__ == "__main__":
    main()
