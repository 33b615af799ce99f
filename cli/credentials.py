"""The basic-auth credentials ``faasbus up`` creates on first start (ARCHITECTURE.md section 8).

``<state dir>/secrets/basic-auth-user`` holds ``admin`` and ``basic-auth-password`` a random
``secrets.token_urlsafe(24)``; both mode 0600 in a 0700 folder, created with ``O_EXCL`` so an
existing file is never overwritten (state survives restarts). The gateway and provider read them
through ``secret_mount_path``, the CLI through :func:`faasbus.cli.settings.read_credentials`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from faasbus.cli.errors import LauncherError
from faasbus.cli.settings import credential_paths

__all__ = ["Credentials", "ensure_credentials"]

DEFAULT_USER = "admin"


@dataclass(frozen=True)
class Credentials:
    user: str
    user_path: Path
    password_path: Path
    created: bool


def _write_new(path: Path, value: str) -> bool:
    """Write ``value`` to a new 0600 file; False when the file already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return True


def ensure_credentials(state_dir: Path) -> Credentials:
    """Create the credential files when missing; return what is there."""
    user_path, password_path = credential_paths(state_dir)
    try:
        user_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        created_user = _write_new(user_path, DEFAULT_USER)
        created_password = _write_new(password_path, secrets.token_urlsafe(24))
        user = user_path.read_text(encoding="utf-8").strip()
        password = password_path.read_text(encoding="utf-8").strip()
        for path in (user_path, password_path):
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
    except OSError as exc:
        raise LauncherError(
            f"cannot create the credentials in {user_path.parent}: {exc.strerror}"
        ) from exc
    if not user or not password:
        raise LauncherError(
            f"{user_path} or {password_path} is empty: delete both and start again to regenerate"
        )
    return Credentials(user, user_path, password_path, created_user or created_password)
