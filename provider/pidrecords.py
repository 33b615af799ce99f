"""Replica pid records, so a restarted provider leaves no orphan serving stale code.

Every running replica has a small JSON record at ``<state>/run/replicas/<instance>.json``:
its pid and kernel start time, its function, its cgroup, and the pid and start time of the
provider that started it. Decision (ARCHITECTURE.md section 5 allows re-adopting or re-creating):
a provider that starts **kills** the replicas of a provider that is gone and re-creates replicas
from the function store. Re-adopting would keep processes whose stdout and stderr pipes died with
the old provider (their logs would be lost) and whose code might no longer be what the store says.

Replicas normally die with their provider anyway (``PR_SET_PDEATHSIG`` = SIGKILL, see
:mod:`faasbus.provider.limits`); the sweep catches the rest (one started in the instant the
provider died, one whose kernel did not deliver the signal). A record whose pid now belongs to
another process (the start time differs) is discarded without touching that process. Records of
a provider that is still alive (two providers sharing one state directory) are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import structlog

from faasbus.provider.procfs import is_same_live_process, process_start_ticks

__all__ = ["PidRecord", "PidRecords"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PidRecord:
    instance: str
    namespace: str
    function: str
    pid: int
    start_ticks: int
    provider_pid: int
    provider_start_ticks: int
    cgroup: str = ""

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Self:
        known = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        return cls(**known)


def _remove(path: Path, cgroup: str) -> None:
    if cgroup:
        with contextlib.suppress(OSError):
            Path(cgroup).rmdir()
    with contextlib.suppress(OSError):
        path.unlink()


class PidRecords:
    """Writes and removes this provider's records; sweeps those of dead providers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.provider_pid = os.getpid()
        self.provider_start_ticks = process_start_ticks(self.provider_pid) or 0

    def add(self, instance: str, namespace: str, function: str, pid: int, cgroup: str) -> None:
        record = PidRecord(
            instance=instance,
            namespace=namespace,
            function=function,
            pid=pid,
            start_ticks=process_start_ticks(pid) or 0,
            provider_pid=self.provider_pid,
            provider_start_ticks=self.provider_start_ticks,
            cgroup=cgroup,
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{instance}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(record)))
        temporary.replace(path)

    def remove(self, instance: str) -> None:
        with contextlib.suppress(OSError):
            (self.directory / f"{instance}.json").unlink()

    def _records(self) -> list[tuple[Path, PidRecord]]:
        found: list[tuple[Path, PidRecord]] = []
        if not self.directory.is_dir():
            return found
        for path in self.directory.glob("*.json"):
            try:
                found.append((path, PidRecord.from_json(json.loads(path.read_text()))))
            except (OSError, ValueError, TypeError):
                with contextlib.suppress(OSError):
                    path.unlink()
        return found

    async def sweep(self, grace_s: float) -> list[PidRecord]:
        """Stop replicas left by dead providers; return their records (to clean endpoints up)."""
        orphans: list[tuple[Path, PidRecord]] = []
        for path, record in self._records():
            if record.provider_pid != self.provider_pid and is_same_live_process(
                record.provider_pid, record.provider_start_ticks
            ):
                continue  # another live provider owns it
            orphans.append((path, record))
        alive = [r for _, r in orphans if is_same_live_process(r.pid, r.start_ticks)]
        for record in alive:
            log.warning("orphan_replica_stop", instance=record.instance, pid=record.pid,
                        function=record.function, namespace=record.namespace)  # fmt: skip
            with contextlib.suppress(OSError):
                os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            alive = [r for r in alive if is_same_live_process(r.pid, r.start_ticks)]
            if alive:
                await asyncio.sleep(0.05)
        for record in alive:
            log.warning("orphan_replica_kill", instance=record.instance, pid=record.pid)
            with contextlib.suppress(OSError):
                os.killpg(record.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(record.pid, signal.SIGKILL)
        for path, record in orphans:
            _remove(path, record.cgroup)
        return [record for _, record in orphans]
