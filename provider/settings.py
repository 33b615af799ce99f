"""The provider's settings, read once at start from an injected environment mapping.

Names follow ARCHITECTURE.md section 7: OpenFaaS's where OpenFaaS has one (``port``,
``basic_auth``, ``secret_mount_path``, ``upstream_timeout``), ``FAASBUS_*`` for our own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from faasbus.bus import BusSettings, Env, SettingsError

__all__ = ["ProviderSettings", "default_state_dir"]


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/faasbus``, else ``~/.local/share/faasbus`` (a per-user data directory)."""
    xdg = environ.get("XDG_DATA_HOME", "").strip()
    if xdg:
        return Path(xdg) / "faasbus"
    home = environ.get("HOME", "").strip() or str(Path("~").expanduser())
    return Path(home) / ".local" / "share" / "faasbus"


@dataclass(frozen=True)
class ProviderSettings:
    """Everything ``python -m faasbus.provider`` reads from its environment.

    port                   port                          8081 (0: a free port, announced on stdout)
    listen_host            FAASBUS_LISTEN_HOST           127.0.0.1
    state_dir              FAASBUS_STATE_DIR             ~/.local/share/faasbus (XDG_DATA_HOME)
    bus                    FAASBUS_NATS_URL, ...         see BusSettings
    basic_auth             basic_auth                    false: Basic auth on /system/*
    secret_mount_path      secret_mount_path             <state_dir>/secrets: holds basic-auth-user
                                                         and basic-auth-password
    start_timeout_s        FAASBUS_REPLICA_START_TIMEOUT 30s: announce line + first healthy check
    stop_grace_s           FAASBUS_REPLICA_STOP_GRACE    30s: SIGTERM, then SIGKILL (Kubernetes too)
    health_interval_s      FAASBUS_HEALTH_INTERVAL       2s: /_/health probe of a ready replica
    endpoint_refresh_s     FAASBUS_ENDPOINT_REFRESH      endpoint TTL / 3
    resync_interval_s      FAASBUS_RESYNC_INTERVAL       30s: full reconcile besides the KV watch
    backoff_initial_s      FAASBUS_RESTART_BACKOFF       0.5s: first restart delay after a crash
    backoff_max_s          FAASBUS_RESTART_BACKOFF_MAX   30s: the delay doubles up to this
    stable_after_s         FAASBUS_RESTART_STABLE_AFTER  10s: up this long resets the backoff
    upstream_timeout_s     upstream_timeout              60s: /function/ proxy total timeout
    cgroup_root            FAASBUS_CGROUP_ROOT           auto: a delegated cgroup v2 directory
    """

    port: int = 8081
    listen_host: str = "127.0.0.1"
    state_dir: Path = Path("faasbus-state")
    bus: BusSettings = field(default_factory=BusSettings)
    basic_auth: bool = False
    secret_mount_path: Path | None = None
    start_timeout_s: float = 30.0
    stop_grace_s: float = 30.0
    health_interval_s: float = 2.0
    endpoint_refresh_s: float = 5.0
    resync_interval_s: float = 30.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    stable_after_s: float = 10.0
    upstream_timeout_s: float = 60.0
    cgroup_root: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        env = Env(environ)
        defaults = cls()
        bus = BusSettings.from_env(environ)
        port = env.integer("port", defaults.port, minimum=0)
        if port > 65535:
            raise SettingsError("port", str(port), "a port number (0-65535)")
        state_text = env.optional_text("FAASBUS_STATE_DIR")
        state_dir = Path(state_text) if state_text else default_state_dir(environ)
        mount = env.optional_text("secret_mount_path")
        cgroup = env.optional_text("FAASBUS_CGROUP_ROOT")
        return cls(
            port=port,
            listen_host=env.text("FAASBUS_LISTEN_HOST", defaults.listen_host),
            state_dir=state_dir.expanduser().absolute(),
            bus=bus,
            basic_auth=env.flag("basic_auth", defaults.basic_auth),
            secret_mount_path=Path(mount) if mount else state_dir / "secrets",
            start_timeout_s=env.duration("FAASBUS_REPLICA_START_TIMEOUT", defaults.start_timeout_s),
            stop_grace_s=env.duration("FAASBUS_REPLICA_STOP_GRACE", defaults.stop_grace_s),
            health_interval_s=env.duration("FAASBUS_HEALTH_INTERVAL", defaults.health_interval_s),
            endpoint_refresh_s=env.duration("FAASBUS_ENDPOINT_REFRESH", bus.endpoint_ttl_s / 3),
            resync_interval_s=env.duration("FAASBUS_RESYNC_INTERVAL", defaults.resync_interval_s),
            backoff_initial_s=env.duration("FAASBUS_RESTART_BACKOFF", defaults.backoff_initial_s),
            backoff_max_s=env.duration("FAASBUS_RESTART_BACKOFF_MAX", defaults.backoff_max_s),
            stable_after_s=env.duration("FAASBUS_RESTART_STABLE_AFTER", defaults.stable_after_s),
            upstream_timeout_s=env.duration("upstream_timeout", defaults.upstream_timeout_s),
            cgroup_root=Path(cgroup) if cgroup else None,
        )

    @property
    def auth_dir(self) -> Path:
        return self.secret_mount_path or self.state_dir / "secrets"
