"""What ``/proc`` says about a replica: identity (for orphan sweeps), memory and CPU (for usage).

A pid alone does not identify a process across a provider restart (pids are reused), so records
keep the kernel's start time of the process (``/proc/<pid>/stat`` field 22) beside the pid; a pid
whose start time differs is somebody else and is left alone.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ProcessSample",
    "descendants",
    "is_same_live_process",
    "process_start_ticks",
    "sample_tree",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces; split after it.
    _, _, rest = text.rpartition(")")
    return rest.split()


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when it does not exist."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    # rest[0] is field 3 (state); start time is field 22 → index 19.
    return int(fields[19])


def is_same_live_process(pid: int, start_ticks: int) -> bool:
    """True when ``pid`` is still the process that started at ``start_ticks`` and not a zombie."""
    fields = _stat_fields(pid) if pid > 0 else None
    if fields is None or len(fields) < 20:
        return False
    return fields[0] not in ("Z", "X") and int(fields[19]) == start_ticks


def _cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 13:
        return 0.0
    # utime and stime are fields 14 and 15 → indexes 11 and 12.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _rss_bytes(pid: int) -> int:
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a classic-mode watchdog forks per request)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        with contextlib.suppress(OSError):
            for task in (_PROC / str(current) / "task").iterdir():
                with contextlib.suppress(OSError, ValueError):
                    found.extend(int(c) for c in (task / "children").read_text().split())
    return found


@dataclass(frozen=True)
class ProcessSample:
    """Resident memory and cumulative CPU seconds of a process tree at one moment."""

    rss_bytes: int
    cpu_seconds: float


def sample_tree(pid: int) -> ProcessSample:
    pids = descendants(pid)
    return ProcessSample(
        rss_bytes=sum(_rss_bytes(p) for p in pids),
        cpu_seconds=sum(_cpu_seconds(p) for p in pids),
    )
