"""Enforcing ``limits.memory`` and ``limits.cpu`` on replicas: cgroup v2 where we may, rlimits else.

cgroup v2 (used when a delegated cgroup is writable): the provider looks for a cgroup v2 directory
it may create children in — ``FAASBUS_CGROUP_ROOT`` if set, else its own cgroup — whose
``cgroup.subtree_control`` lists (or accepts) ``memory`` and ``cpu``. Each replica then gets a child
cgroup ``faasbus-<instance>`` with ``memory.max`` = the memory limit (``memory.swap.max`` = 0) and
``cpu.max`` = the CPU limit as a quota per 100 ms period, exactly what Kubernetes does. The limit
covers the replica's whole process tree (watchdog and forked ``fprocess``). (This path could not
be exercised on the machine it was written on; the tests check whichever mechanism is active.)

rlimits (the fallback, e.g. in containers and VMs without a delegated cgroup — the case on the
machine this was written on, whose cgroup v2 mount offers no memory or cpu controller): the memory
limit becomes ``RLIMIT_AS`` on the watchdog, inherited by each process it forks. This caps *virtual
address space per process*, which is stricter than Kubernetes' resident-memory limit (a Python
replica with aiohttp maps ~60-120 MB of address space while resident at ~35 MB, so limits below
about 96Mi will stop it from starting) and it applies to each process separately rather than to
the tree. No rlimit can cap a CPU *rate* (``RLIMIT_CPU`` is total seconds, then a kill), so under
the fallback a CPU limit is **not enforced**: the replica runs at nice 10 instead, and the provider
logs ``cpu_limit_not_enforced`` once per replica start.

Which mechanism is active is logged at start (``limits_mechanism``) and shown in ``/system/info``.
Requests (``requests.memory/cpu``) are accepted and stored but not reserved, as in faasd.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from faasbus.provider.types import ResourceSpec, WireError

__all__ = ["CgroupLimiter", "Limits", "Spawner", "parse_cpu", "parse_memory"]

log = structlog.get_logger(__name__)

_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d+)?)([a-zA-Z]*)\s*$")
_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50}
_DECIMAL = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_CPU_PERIOD_US = 100_000
_PR_SET_PDEATHSIG = 1
_NICE_WITHOUT_CPU_LIMIT = 10


def parse_memory(text: str, field_name: str = "limits.memory") -> int | None:
    """Bytes in a Kubernetes quantity (``128Mi``, ``1G``, ``134217728``); None when empty."""
    if not text.strip():
        return None
    match = _QUANTITY.match(text)
    if match is None:
        raise WireError(field_name, f"{text!r} is not a memory quantity such as 128Mi or 1Gi")
    number, unit = float(match.group(1)), match.group(2)
    if unit in _BINARY:
        value = number * _BINARY[unit]
    elif unit in _DECIMAL:
        value = number * _DECIMAL[unit]
    elif unit == "m":
        value = number / 1000
    else:
        raise WireError(field_name, f"{text!r}: unknown unit {unit!r} (use Ki, Mi, Gi, k, M, G)")
    if value < 1 << 20:
        raise WireError(field_name, f"{text!r} is below 1Mi, too small for any process")
    return int(value)


def parse_cpu(text: str, field_name: str = "limits.cpu") -> float | None:
    """Cores in a Kubernetes CPU quantity (``100m`` = 0.1, ``2``, ``0.5``); None when empty."""
    if not text.strip():
        return None
    match = _QUANTITY.match(text)
    if match is None or match.group(2) not in ("", "m"):
        raise WireError(field_name, f"{text!r} is not a CPU quantity such as 100m or 0.5")
    cores = float(match.group(1)) / (1000 if match.group(2) == "m" else 1)
    if cores <= 0:
        raise WireError(field_name, f"{text!r} must be more than 0")
    return cores


@dataclass(frozen=True)
class Limits:
    memory_bytes: int | None = None
    cpu_cores: float | None = None

    @classmethod
    def from_spec(cls, spec: ResourceSpec | None) -> Limits:
        if spec is None:
            return cls()
        return cls(parse_memory(spec.memory), parse_cpu(spec.cpu))

    @property
    def empty(self) -> bool:
        return self.memory_bytes is None and self.cpu_cores is None


def _cgroup2_mount() -> Path | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                return Path(left.split()[4])
    return None


def _own_cgroup() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    return None


class CgroupLimiter:
    """Creates, fills and removes per-replica cgroups, when a usable cgroup v2 root exists."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    @classmethod
    def detect(cls, configured: Path | None) -> CgroupLimiter:
        candidates: list[Path] = []
        if configured is not None:
            candidates.append(configured)
        else:
            mount, own = _cgroup2_mount(), _own_cgroup()
            if mount is not None and own is not None:
                candidates.append(mount / own.lstrip("/"))
        for candidate in candidates:
            if cls._usable(candidate):
                return cls(candidate)
        return cls(None)

    @staticmethod
    def _usable(root: Path) -> bool:
        control = root / "cgroup.subtree_control"
        try:
            enabled = control.read_text().split()
            if not {"memory", "cpu"} <= set(enabled):
                control.write_text("+memory +cpu")
                enabled = control.read_text().split()
        except OSError:
            return False
        return {"memory", "cpu"} <= set(enabled) and os.access(root, os.W_OK)

    @property
    def mechanism(self) -> str:
        return "cgroup2" if self.root is not None else "rlimit"

    def create(self, instance: str, limits: Limits) -> Path | None:
        """The cgroup directory for one replica with its limits written, or None (fallback)."""
        if self.root is None or limits.empty:
            return None
        path = self.root / f"faasbus-{instance}"
        try:
            path.mkdir(exist_ok=True)
            if limits.memory_bytes is not None:
                (path / "memory.max").write_text(str(limits.memory_bytes))
                with contextlib.suppress(OSError):
                    (path / "memory.swap.max").write_text("0")
            if limits.cpu_cores is not None:
                quota = max(1000, int(limits.cpu_cores * _CPU_PERIOD_US))
                (path / "cpu.max").write_text(f"{quota} {_CPU_PERIOD_US}")
        except OSError as exc:
            log.warning("cgroup_create_failed", path=str(path), error=str(exc))
            self.remove(path)
            return None
        return path

    @staticmethod
    def remove(path: Path | None) -> None:
        if path is not None:
            with contextlib.suppress(OSError):
                path.rmdir()


def _prctl() -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    with contextlib.suppress(OSError, AttributeError):
        function: Callable[..., int] = ctypes.CDLL(name, use_errno=True).prctl
        return function
    return None


_PRCTL = _prctl()
_DEATH_SIGNAL = "KILL"


def _pdeathsig() -> None:
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


@dataclass(frozen=True)
class Spawner:
    """How a replica is started so that it dies with the provider and gets its limits.

    A replica must not outlive a provider killed with -9 and keep serving stale code, so it asks
    the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``; SIGKILL rather than SIGTERM
    because nobody is left to read its output, and a graceful drain that logs into a broken pipe
    may never end). That is done by ``setpriv --pdeathsig KILL --`` in front of the command
    (util-linux; about 1 ms) rather than a ``preexec_fn``, which would make Python fork the whole
    provider instead of using vfork (about 10 ms more per start, measured here). Without
    ``setpriv`` a ``preexec_fn`` calls ``prctl`` itself.

    Limits are applied by the provider to the new pid right after the spawn (:meth:`confine`):
    it joins the replica's cgroup, or gets ``RLIMIT_AS`` and nice 10 under the fallback. The
    watchdog is still starting its interpreter at that moment; what it forks later inherits them.
    """

    setpriv: str | None

    @classmethod
    def detect(cls) -> Spawner:
        path = shutil.which("setpriv")
        if path is not None:
            try:
                result = subprocess.run(
                    [path, "--pdeathsig", _DEATH_SIGNAL, "--", "true"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired):
                return cls(None)
            if result.returncode == 0:
                return cls(path)
        return cls(None)

    def argv(self, argv: Sequence[str]) -> tuple[str, ...]:
        if self.setpriv is None:
            return tuple(argv)
        return (self.setpriv, "--pdeathsig", _DEATH_SIGNAL, "--", *argv)

    def preexec(self) -> Callable[[], None] | None:
        return None if self.setpriv is not None or _PRCTL is None else _pdeathsig

    @staticmethod
    def confine(pid: int, limits: Limits, cgroup: Path | None) -> None:
        """Put the just-started replica in its cgroup, or apply the rlimit fallback."""
        if limits.empty:
            return
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(pid))
            return
        if limits.memory_bytes is not None:
            memory = limits.memory_bytes
            resource.prlimit(pid, resource.RLIMIT_AS, (memory, memory))
        if limits.cpu_cores is not None:
            os.setpriority(os.PRIO_PROCESS, pid, _NICE_WITHOUT_CPU_LIMIT)
            log.info(
                "cpu_limit_not_enforced",
                pid=pid,
                cpu=limits.cpu_cores,
                reason="no writable cgroup v2 with the cpu controller; running at nice 10",
            )
