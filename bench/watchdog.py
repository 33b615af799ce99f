"""Watchdog throughput and latency, every mode against a bare aiohttp ceiling, in one run.

    .venv/bin/python bench/watchdog.py [--duration 5] [--rounds 3] [--connections 1,50]
                                       [--only "bare,python (def)"]

Starts, each on a free loopback port:

* ``bare aiohttp``: a hello-world aiohttp server, the ceiling for anything written in Python;
* ``python (def)`` / ``python (async def)``: the watchdog in python mode with a python3-http echo
  handler (sync, then async);
* ``http``: the watchdog in http mode in front of the same hello-world aiohttp server;
* ``classic``: the watchdog in classic mode with ``fprocess=cat``.

and measures requests/s and p50/p99 latency with ``wrk`` (``apt-get install -y wrk``) or, when
wrk is missing, an aiohttp load generator in a separate process, each point ``--rounds`` times
interleaved across targets. It prints one table (medians; every target as a share of the bare
server at the same concurrency, per round) and stops everything it started (SIGTERM by pid, then
SIGKILL). The machine's cores are shared by the servers and the load generator: compare rows of
one run, not numbers across machines. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

HELLO_SERVER = textwrap.dedent(
    """
    import os
    import sys

    from aiohttp import web

    async def hello(request):
        return web.Response(text="Hello, World!")

    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
    """
)
SYNC_HANDLER = textwrap.dedent(
    """
    def handle(event, context):
        return {"statusCode": 200, "body": event.body or "Hello, World!"}
    """
)
ASYNC_HANDLER = textwrap.dedent(
    """
    async def handle(event, context):
        return {"statusCode": 200, "body": event.body or "Hello, World!"}
    """
)
ANNOUNCE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


@dataclass
class Target:
    name: str
    url: str
    process: subprocess.Popen[bytes]


@dataclass
class Point:
    target: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    share: float | None  # median over rounds of rps / bare aiohttp's rps in the same round


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def start_watchdog(name: str, env: dict[str, str], workdir: Path) -> Target:
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "port": "0",
        "healthcheck_interval": "0",
        "FAASBUS_LOCK_FILE": str(workdir / f"{name.replace(' ', '_')}.lock"),
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "faasbus.watchdog"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=full,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    match = ANNOUNCE.search(line)
    if match is None:
        process.kill()
        raise RuntimeError(f"{name}: no announce line (got {line!r})")
    return Target(name, f"http://127.0.0.1:{match.group(1)}/", process)


def start_all(workdir: Path) -> list[Target]:
    hello = workdir / "hello_server.py"
    hello.write_text(HELLO_SERVER)
    targets: list[Target] = []
    port = free_port()
    bare = subprocess.Popen(
        [sys.executable, str(hello), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    targets.append(Target("bare aiohttp", f"http://127.0.0.1:{port}/", bare))
    wait_port(port)
    for name, source in (("python (def)", SYNC_HANDLER), ("python (async def)", ASYNC_HANDLER)):
        folder = workdir / name.replace(" ", "_").replace("(", "").replace(")", "")
        folder.mkdir()
        (folder / "handler.py").write_text(source)
        targets.append(start_watchdog(name, {"FAASBUS_HANDLER": str(folder)}, workdir))
    upstream = free_port()
    targets.append(
        start_watchdog(
            "http",
            {
                "mode": "http",
                "fprocess": f"{sys.executable} {hello} {upstream}",
                "upstream_url": f"http://127.0.0.1:{upstream}",
            },
            workdir,
        )
    )
    targets.append(start_watchdog("classic (cat)", {"fprocess": "cat"}, workdir))
    return targets


def stop_all(targets: list[Target]) -> None:
    for target in targets:
        if target.process.poll() is None:
            target.process.send_signal(signal.SIGTERM)
    for target in targets:
        try:
            target.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            target.process.kill()
            target.process.wait()


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        return float("nan")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def run_wrk(url: str, connections: int, duration_s: float) -> tuple[float, float, float, int]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses:\s+(\d+)", r"Socket errors:.*?(\d+)"):
        found = re.search(pattern, out)
        if found:
            errors += int(found.group(1))
    return rps, p50, p99, errors


async def _aiohttp_load(url: str, connections: int, duration_s: float) -> dict[str, float]:
    import aiohttp  # noqa: PLC0415 - only the fallback load generator needs it

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration_s
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while (start := time.perf_counter()) < deadline:
                async with session.get(url) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - start)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
    }


def run_aiohttp(url: str, connections: int, duration_s: float) -> tuple[float, float, float, int]:
    out = subprocess.run(
        [sys.executable, __file__, "--loadgen", url, str(connections), str(duration_s)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out)
    return result["rps"], result["p50"], result["p99"], int(result["errors"])


def measure(
    targets: list[Target], connections: list[int], duration_s: float, rounds: int
) -> list[Point]:
    """Every point `rounds` times, interleaved across targets; the median of each is kept.

    Interleaving spreads the noise of a shared machine over all targets instead of letting one
    target's run coincide with someone else's build, and the share of the ceiling is taken per
    round (same minute, same noise) before the median.
    """
    runner = run_wrk if shutil.which("wrk") else run_aiohttp
    for target in targets:
        runner(target.url, 10, 1)  # warm-up
    samples: dict[tuple[str, int], list[tuple[float, float, float, int]]] = {}
    for round_no in range(1, rounds + 1):
        for target in targets:
            for conns in connections:
                sample = runner(target.url, conns, duration_s)
                samples.setdefault((target.name, conns), []).append(sample)
                print(
                    f"  round {round_no}: {target.name:<20} c={conns:<3} {sample[0]:>9.0f} req/s",
                    file=sys.stderr,
                )
    points = []
    for (name, conns), runs in samples.items():
        ceiling = samples.get(("bare aiohttp", conns))
        share = None
        if ceiling is not None:
            share = statistics.median(
                run[0] / bare[0] for run, bare in zip(runs, ceiling, strict=True)
            )
        ordered = sorted(runs)
        rps, p50, p99, _ = ordered[len(ordered) // 2]
        points.append(Point(name, conns, rps, p50, p99, sum(r[3] for r in runs), share))
    return points


def table(points: list[Point]) -> str:
    lines = [
        "| target | conns | req/s | p50 ms | p99 ms | % of bare aiohttp | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        share = "" if p.share is None else f"{100 * p.share:.0f}%"
        lines.append(
            f"| {p.target} | {p.connections} | {p.rps:,.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} "
            f"| {share} | {p.errors} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per point")
    parser.add_argument("--connections", default="1,50", help="comma-separated concurrencies")
    parser.add_argument("--rounds", type=int, default=3, help="runs per point; the median is kept")
    parser.add_argument(
        "--only", default="", help="comma-separated name prefixes to measure (default: all)"
    )
    parser.add_argument(
        "--loadgen", nargs=3, metavar=("URL", "CONNS", "SECONDS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.loadgen:
        url, conns, seconds = args.loadgen
        print(json.dumps(asyncio.run(_aiohttp_load(url, int(conns), float(seconds)))))
        return
    connections = [int(c) for c in args.connections.split(",")]
    tool = "wrk -t1 --latency" if shutil.which("wrk") else "aiohttp load generator"
    print(
        f"load generator: {tool}; {args.duration:g}s per point, median of {args.rounds}; "
        f"cores: {os.cpu_count()}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="faasbus-bench-") as tmp:
        targets = start_all(Path(tmp))
        chosen = [
            t
            for t in targets
            if not args.only or any(t.name.startswith(p) for p in args.only.split(","))
        ]
        try:
            points = measure(chosen, connections, args.duration, args.rounds)
        finally:
            stop_all(targets)
    print(table(points))


if __name__ == "__main__":
    main()
