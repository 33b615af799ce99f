"""Memory of an idle ``faasbus up`` with the examples deployed: every process of the run, summed.

Starts ``faasbus up`` in a temporary state directory on free ports, waits until the examples
answer, lets it settle, then sums RSS (and PSS, which counts shared pages once) over the whole
process tree below ``faasbus up``. Stops it with SIGTERM.

Usage: .venv/bin/python bench/up_memory.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from faasbus.bus import free_port

REPO = Path(__file__).resolve().parent.parent


def descendants(root: int) -> set[int]:
    """Every process below ``root`` (children of children...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def memory_kib(pid: int) -> tuple[int, int, str]:
    """(RSS, PSS) in KiB and the command line of ``pid``."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:70]
    except OSError:
        return 0, 0, "gone"
    return rss, pss, cmd


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        port, nats_port = free_port(), free_port()
        up = subprocess.Popen(
            [sys.executable, "-m", "faasbus.cli", "up", "--state-dir", str(state),
             "--port", str(port), "--nats-port", str(nats_port),
             "-f", str(REPO / "examples" / "stack.yml")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            for name in ("echo", "hello", "wc"):
                while True:
                    try:
                        req = urllib.request.Request(
                            f"http://127.0.0.1:{port}/function/{name}", data=b"x"
                        )
                        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310
                            if r.status == 200:
                                break
                    except (urllib.error.URLError, OSError):
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{name} never answered")
                    time.sleep(0.5)
            time.sleep(5)  # idle
            pids = {up.pid, *descendants(up.pid)}
            rows = sorted((memory_kib(pid) for pid in pids), key=lambda row: -row[0])
            print(f"{'RSS MiB':>8} {'PSS MiB':>8}  process")
            for rss, pss, cmd in rows:
                print(f"{rss / 1024:8.1f} {pss / 1024:8.1f}  {cmd}")
            total_rss = sum(r[0] for r in rows) / 1024
            total_pss = sum(r[1] for r in rows) / 1024
            print(f"{total_rss:8.1f} {total_pss:8.1f}  total ({len(rows)} processes)")
        finally:
            os.killpg(up.pid, signal.SIGTERM)
            up.wait(timeout=60)


if __name__ == "__main__":
    main()
