"""Where the CLI talks to and as whom: gateway URL, credentials and the local state directory.

Precedence follows faas-cli where it has a rule and the local ``faasbus up`` otherwise:

gateway      ``--gateway`` > ``OPENFAAS_URL`` > the stack file's ``provider.gateway`` (commands that
             read one) > ``http://127.0.0.1:8080``
user         ``--user`` > ``FAASBUS_USER`` > ``<state dir>/secrets/basic-auth-user``
password     ``--password`` > ``FAASBUS_PASSWORD`` > ``<state dir>/secrets/basic-auth-password``
state dir    ``--state-dir`` > ``FAASBUS_STATE_DIR`` > ``$XDG_DATA_HOME/faasbus`` >
             ``~/.local/share/faasbus``

The credential files are the ones ``faasbus up`` writes on first start, so a CLI on the same
machine and state directory needs no flags at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

__all__ = [
    "DEFAULT_GATEWAY",
    "ClientSettings",
    "credential_paths",
    "default_state_dir",
    "read_credentials",
]

DEFAULT_GATEWAY = "http://127.0.0.1:8080"
USER_FILE = "basic-auth-user"
PASSWORD_FILE = "basic-auth-password"  # noqa: S105 - a file name, not a password


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``FAASBUS_STATE_DIR``, else the per-user data directory (XDG)."""
    env = os.environ if environ is None else environ
    explicit = env.get("FAASBUS_STATE_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "faasbus"


def credential_paths(state_dir: Path) -> tuple[Path, Path]:
    """The basic-auth user and password files ``faasbus up`` creates."""
    secrets_dir = state_dir / "secrets"
    return secrets_dir / USER_FILE, secrets_dir / PASSWORD_FILE


def read_credentials(state_dir: Path) -> tuple[str, str] | None:
    """The user and password stored under ``state_dir``, or None when either is missing."""
    user_path, password_path = credential_paths(state_dir)
    try:
        user = user_path.read_text(encoding="utf-8").strip()
        password = password_path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not user or not password:
        return None
    return user, password


@dataclass(frozen=True)
class ClientSettings:
    """What every gateway command needs; built once per invocation from the global options.

    gateway             URL of the OpenFaaS-compatible gateway (trailing slash removed)
    gateway_explicit    True when the user chose it (flag or OPENFAAS_URL): a stack file's
                        ``provider.gateway`` then does not override it
    user, password      basic-auth credentials, or None to send none
    state_dir           local state directory (credentials, bundles built by ``faasbus build``)
    """

    gateway: str
    gateway_explicit: bool
    user: str | None
    password: str | None
    state_dir: Path

    @classmethod
    def resolve(
        cls,
        *,
        gateway: str | None,
        user: str | None,
        password: str | None,
        state_dir: Path | None,
        environ: Mapping[str, str] | None = None,
    ) -> Self:
        """Apply the precedence rules in the module docstring; flags already include env vars."""
        directory = state_dir if state_dir is not None else default_state_dir(environ)
        if user is None or password is None:
            stored = read_credentials(directory)
            if stored is not None:
                user = user if user is not None else stored[0]
                password = password if password is not None else stored[1]
        explicit = bool(gateway and gateway.strip())
        url = gateway.strip() if gateway and explicit else DEFAULT_GATEWAY
        return cls(
            gateway=url.rstrip("/"),
            gateway_explicit=explicit,
            user=user,
            password=password,
            state_dir=directory,
        )

    def with_stack_gateway(self, stack_gateway: str | None) -> Self:
        """Use the stack file's ``provider.gateway`` unless the user chose a gateway."""
        if self.gateway_explicit or not stack_gateway:
            return self
        return replace(self, gateway=stack_gateway.rstrip("/"))
