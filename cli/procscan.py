"""Finding processes a ``faasbus up`` run started, wherever they ended up.

Every process ``faasbus up`` starts carries ``FAASBUS_UP_TOKEN=<random token of this run>`` in its
environment, and so do their children unless a component builds a clean environment for them.
Function replicas do not inherit it (the provider builds their environment from scratch), so they
are recognised by the lock file the provider gives each of them, ``FAASBUS_LOCK_FILE`` under the
state directory; a user's shell that merely exports ``FAASBUS_STATE_DIR`` never matches.

Stopping process groups covers the normal case; this scan catches what escaped into a session of
its own (replicas run in their own sessions) when their parent could not stop them, or what a run
killed with SIGKILL left behind, found again on the next start through the token file in the state
directory. Linux only (``/proc``); elsewhere it finds nothing. Only this user's processes are
readable, so only they can match.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

__all__ = ["LOCK_FILE_VARIABLE", "TOKEN_VARIABLE", "find_processes", "kill_processes"]

TOKEN_VARIABLE = "FAASBUS_UP_TOKEN"  # noqa: S105 - a variable name, not a secret
LOCK_FILE_VARIABLE = "FAASBUS_LOCK_FILE"
_PROC = Path("/proc")


def _matches(pid_dir: Path, exact: bytes | None, prefix: bytes | None) -> bool:
    try:
        entries = (pid_dir / "environ").read_bytes().split(b"\0")
    except OSError:
        return False
    if exact is not None and exact in entries:
        return True
    return prefix is not None and any(entry.startswith(prefix) for entry in entries)


def find_processes(token: str | None, state_dir: Path | None = None) -> list[int]:
    """Pids (not ours) carrying ``token``, or replicas whose lock file is in ``state_dir``."""
    if not _PROC.is_dir() or (not token and state_dir is None):
        return []
    exact = f"{TOKEN_VARIABLE}={token}".encode() if token else None
    prefix = None
    if state_dir is not None:
        prefix = f"{LOCK_FILE_VARIABLE}={state_dir.resolve()}{os.sep}".encode()
    me = os.getpid()
    found: list[int] = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        if _matches(entry, exact, prefix):
            found.append(int(entry.name))
    return sorted(found)


def kill_processes(pids: list[int]) -> list[int]:
    """SIGKILL each pid; return the ones that were still there."""
    killed: list[int] = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed
