"""Benchmark of the async path: accepted calls/s, completed calls/s, enqueue→callback latency.

Starts its own nats-server, gateway and queue worker(s) as real processes, an echo replica and a
callback receiver (aiohttp, in this process), registers the function in the bus as the provider
would, and measures, in one run:

1. accepted/s: POST /async-function/echo at 50 connections for a few seconds (202s per second),
   with wrk when it is installed (`apt-get install -y wrk`), else an aiohttp client in this process
   (which then competes with the gateway for the 2 cores and reads lower);
2. completed/s: N calls enqueued as fast as possible, until all N callbacks have arrived, with
   the CPU time each process spent per completed call in that phase (worker(s), gateway,
   nats-server, and this process: load generator, echo replica and callback receiver), a figure
   steadier than calls/s on a machine shared with other work;
3. latency: calls sent at a steady 200/s; enqueue → callback received, p50 and p99.

Usage: .venv/bin/python bench/async.py [--seconds 5] [--workers 1] [--completed 3000]
Prints a table; stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from faasbus.bus import (
    BusSettings,
    Endpoint,
    NatsServer,
    NatsServerOptions,
    connect,
    declare_bus,
    free_port,
    names,
    put_endpoint,
)

FUNCTION = "echo-bench"


def start(module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module], env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def wait_line(process: subprocess.Popen[bytes], needle: bytes) -> bytes:
    assert process.stdout is not None
    line = process.stdout.readline()
    if needle not in line:
        raise RuntimeError(f"process did not start: {line!r}")
    return line


async def serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process has used so far (Linux /proc; 0 when unknown)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def wrk_accepted_rate(url: str, seconds: float, connections: int) -> tuple[float, int]:
    """wrk from a second process (INFRA.md): the load generator does not share our CPU time."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write('wrk.method = "POST"\nwrk.body = "x"\n')
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "-s", script.name, url],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        ).stdout  # fmt: skip
    finally:
        Path(script.name).unlink()
    rate = float(out.split("Requests/sec:")[1].split()[0])
    non_2xx = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if "Non-2xx" in out else 0
    return rate, non_2xx


async def accepted_rate(url: str, seconds: float, connections: int) -> tuple[float, int]:
    if shutil.which("wrk"):
        return await asyncio.to_thread(wrk_accepted_rate, url, seconds, connections)
    deadline = time.monotonic() + seconds
    accepted = 0
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:

        async def loop() -> None:
            nonlocal accepted, errors
            while time.monotonic() < deadline:
                async with s.post(url, data=b"x") as r:
                    await r.read()
                    if r.status == 202:
                        accepted += 1
                    else:
                        errors += 1

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(connections)))
        return accepted / (time.monotonic() - started), errors


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--completed", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()

    callbacks: dict[str, float] = {}
    arrived = asyncio.Event()

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    retried = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal retried
        callbacks[request.headers["X-Call-Id"]] = time.monotonic()
        retried += request.headers.get("X-Retry", "0") != "0"
        arrived.set()
        return web.Response(status=202)

    replica_app = web.Application()
    replica_app.router.add_route("*", "/{tail:.*}", echo)
    callback_app = web.Application()
    callback_app.router.add_post("/cb", receive)
    replica_port, callback_port, gateway_port = free_port(), free_port(), free_port()
    runners = [await serve(replica_app, replica_port), await serve(callback_app, callback_port)]
    callback_url = f"http://127.0.0.1:{callback_port}/cb"

    with (
        tempfile.TemporaryDirectory() as tmp,
        NatsServer(NatsServerOptions(store_dir=Path(tmp) / "nats")) as server,
    ):
        settings = BusSettings(nats_url=server.url)
        bus = await connect(settings, name="bench")
        await declare_bus(bus.js, settings)
        functions = await bus.js.key_value(names.FUNCTIONS_BUCKET)
        await functions.put(
            names.function_key(names.DEFAULT_NAMESPACE, FUNCTION),
            json.dumps({"service": FUNCTION, "namespace": names.DEFAULT_NAMESPACE,
                        "image": "bench", "replicas": 1}).encode(),
        )  # fmt: skip
        endpoints = await bus.js.key_value(names.ENDPOINTS_BUCKET)
        endpoint = Endpoint(names.DEFAULT_NAMESPACE, FUNCTION, f"{FUNCTION}-1",
                            f"http://127.0.0.1:{replica_port}", ready=True)  # fmt: skip
        await put_endpoint(endpoints, endpoint)

        async def refresh() -> None:
            # What the provider does for a live replica: an endpoint not refreshed expires.
            while True:
                await asyncio.sleep(settings.endpoint_ttl_s / 3)
                await put_endpoint(endpoints, endpoint)

        refresher = asyncio.create_task(refresh(), name="refresh-endpoint")
        env = {
            "FAASBUS_NATS_URL": server.url,
            "FAASBUS_LOG_LEVEL": "warning",
            "port": str(gateway_port),
            "functions_provider_url": "http://127.0.0.1:9",
        }
        gateway = start("faasbus.gateway", env)
        # Short retry waits: a replica that hiccups under this load must not turn into a
        # 60-second exponential backoff inside a latency measurement.
        worker_env = {**env, "max_inflight": "200", "initial_retry_wait": "100ms",
                      "max_retry_wait": "1s"}  # fmt: skip
        processes = [gateway]
        try:
            wait_line(gateway, b"listening")
            base = f"http://127.0.0.1:{gateway_port}/async-function/{FUNCTION}"
            async with aiohttp.ClientSession() as s:
                for _ in range(200):
                    try:
                        async with s.post(base, data=b"warm") as r:
                            if r.status == 202:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)

            # 1. accepted/s: what the gateway takes in; workers start after it, so the figure is
            # the enqueue path's (on 2 cores a draining worker would take CPU from the gateway).
            progress("measuring accepted/s")
            rate, errors = await accepted_rate(base, args.seconds, 50)
            progress(f"accepted {rate:.0f}/s; starting workers, waiting for the backlog to drain")
            workers = [start("faasbus.queue_worker", worker_env) for _ in range(args.workers)]
            processes.extend(workers)
            for worker in workers:
                wait_line(worker, b"ready")

            # wait for the backlog to drain before measuring completion
            for _ in range(1200):
                info = await bus.js.stream_info(names.INVOKE_STREAM)
                if info.state.messages == 0:
                    break
                await asyncio.sleep(0.1)

            # 2. completed/s end to end, with callbacks
            progress("measuring completed/s")
            callbacks.clear()
            sent: dict[str, float] = {}
            conn = aiohttp.TCPConnector(limit=50)
            # CPU each process spends per completed call: steadier than calls/s on a shared
            # machine, and it says where the time goes.
            accounted = {"worker(s)": [w.pid for w in workers],
                         "gateway": [gateway.pid], "nats-server": [server.pid]}  # fmt: skip
            cpu_before = {k: sum(map(cpu_seconds, pids)) for k, pids in accounted.items()}
            bench_cpu_before = time.process_time()
            async with aiohttp.ClientSession(connector=conn) as s:
                started = time.monotonic()
                queue: asyncio.Queue[int] = asyncio.Queue()
                for i in range(args.completed):
                    queue.put_nowait(i)

                async def sender() -> None:
                    while not queue.empty():
                        i = queue.get_nowait()
                        call_id = f"done-{i}"
                        sent[call_id] = time.monotonic()
                        headers = {"X-Callback-Url": callback_url, "X-Call-Id": call_id}
                        async with s.post(base, data=b"x", headers=headers) as r:
                            await r.read()
                            if r.status != 202:
                                refused[r.status] = refused.get(r.status, 0) + 1

                refused: dict[int, int] = {}
                await asyncio.gather(*(sender() for _ in range(50)))
                if refused:
                    progress(f"not accepted: {refused}")
                while len(callbacks) < args.completed:
                    arrived.clear()
                    try:
                        await asyncio.wait_for(arrived.wait(), 60)
                    except TimeoutError:
                        progress(f"only {len(callbacks)} of {args.completed} callbacks arrived")
                        raise
                completed_rate = args.completed / (time.monotonic() - started)
                cpu_ms = {k: (sum(map(cpu_seconds, pids)) - cpu_before[k]) * 1000 / args.completed
                          for k, pids in accounted.items()}  # fmt: skip
                cpu_ms["bench process"] = (
                    (time.process_time() - bench_cpu_before) * 1000 / args.completed
                )

                # 3. latency at a steady rate
                progress(f"completed {completed_rate:.0f}/s; measuring latency")
                callbacks.clear()
                sent.clear()
                total = int(args.rate * args.seconds * 2)
                interval = 1.0 / args.rate
                t0 = time.monotonic()
                pending: list[asyncio.Task[None]] = []

                async def one(call_id: str) -> None:
                    headers = {"X-Callback-Url": callback_url, "X-Call-Id": call_id}
                    sent[call_id] = time.monotonic()
                    async with s.post(base, data=b"x", headers=headers) as r:
                        await r.read()

                for i in range(total):
                    await asyncio.sleep(max(0.0, t0 + i * interval - time.monotonic()))
                    pending.append(asyncio.create_task(one(f"lat-{i}")))
                await asyncio.gather(*pending)
                while len(callbacks) < total:
                    arrived.clear()
                    try:
                        await asyncio.wait_for(arrived.wait(), 60)
                    except TimeoutError:
                        progress(f"only {len(callbacks)} of {total} callbacks arrived")
                        raise
                latencies = [(callbacks[c] - sent[c]) * 1000 for c in sent]

            print()
            print(f"async path, {args.workers} worker(s), 2 shared cores")
            print(f"{'measure':<44}{'value':>12}")
            print(f"{'accepted calls/s at 50 connections':<44}{rate:>12.0f}"
                  + (f"  ({errors} non-202)" if errors else ""))  # fmt: skip
            print(f"{'completed calls/s with callbacks':<44}{completed_rate:>12.0f}")
            for name, ms in cpu_ms.items():
                print(f"{f'  CPU ms per completed call, {name}':<44}{ms:>12.2f}")
            print(f"{'calls that needed a retry (all phases)':<44}{retried:>12}")
            print(f"{f'latency p50 at {args.rate:.0f}/s (ms)':<44}"
                  f"{statistics.median(latencies):>12.1f}")  # fmt: skip
            print(f"{f'latency p99 at {args.rate:.0f}/s (ms)':<44}"
                  f"{percentile(latencies, 99):>12.1f}")  # fmt: skip
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
            refresher.cancel()
            await bus.close()
            for runner in runners:
                await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
