"""From a stored function to the command line and environment of one replica.

A replica is ``<python> -m faasbus.watchdog``:

- a **bundle** (``image`` names one built by ``faasbus build``) runs the bundle's own virtual
  environment Python with ``mode=python``, ``FAASBUS_HANDLER=<bundle>/function/handler.py`` and
  ``FAASBUS_TEMPLATE=<lang>``, working directory the bundle (as ``/home/app`` in a container);
- a **host command** (``envProcess``) runs this Python with ``fprocess=<envProcess>`` and
  ``mode=classic`` unless ``envVars.mode`` says otherwise ("any binary can be a function").

The environment is built from scratch, not inherited: a function sees a small allow-list of the
provider's variables (PATH, HOME, locale, time zone, TMPDIR), its ``envVars``, and what the
provider sets (``port=0``, ``FAASBUS_SECRETS_DIR`` and ``secret_mount_path``, a per-replica
``FAASBUS_LOCK_FILE``, ``HOSTNAME`` = the instance name). The provider's own settings (the bus URL,
credentials) are never passed on.

:attr:`ReplicaSpec.spec_hash` covers what changes the running code or its environment (image and
bundle build, envProcess, envVars, secrets, limits) and not labels or annotations, so scaling
labels or topic annotations can be edited without restarting replicas.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from faasbus.provider.bundles import Bundle
from faasbus.provider.errors import InvalidRequest
from faasbus.provider.limits import Limits
from faasbus.provider.types import FunctionDeployment

__all__ = ["WATCHDOG_MODES", "ReplicaSpec", "replica_spec", "validate_mode"]

WATCHDOG_MODES = frozenset({"classic", "streaming", "serializing", "http", "static", "python"})
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
_FALLBACK_PATH = "/usr/local/bin:/usr/bin:/bin"
_HEALTHCHECK_INTERVAL = "1s"


def validate_mode(deployment: FunctionDeployment) -> None:
    mode = deployment.env_vars.get("mode", "").strip().lower()
    if mode and mode not in WATCHDOG_MODES:
        raise InvalidRequest(
            f"envVars.mode: {mode!r} is not a watchdog mode ({', '.join(sorted(WATCHDOG_MODES))})"
        )


@dataclass(frozen=True)
class ReplicaSpec:
    """How to start a replica of one function; per-instance values are added at start."""

    namespace: str
    function: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    limits: Limits
    secrets_dir: Path
    run_dir: Path
    spec_hash: str
    kind: str = "command"

    def env_for(self, instance: str) -> dict[str, str]:
        env = dict(self.env)
        env["HOSTNAME"] = instance
        env["FAASBUS_INSTANCE"] = instance
        env["FAASBUS_LOCK_FILE"] = str(self.run_dir / f"{instance}.lock")
        return env


def replica_spec(
    deployment: FunctionDeployment,
    bundle: Bundle | None,
    function_dir: Path,
    provider_env: Mapping[str, str],
) -> ReplicaSpec:
    """The spec for ``deployment``; ``bundle`` is required unless ``envProcess`` is set."""
    env = {name: provider_env[name] for name in _INHERITED if provider_env.get(name)}
    env.setdefault("PATH", _FALLBACK_PATH)
    env["PYTHONUNBUFFERED"] = "1"
    secrets_dir = function_dir / "secrets"
    run_dir = function_dir / "run"
    identity: dict[str, object] = {
        "image": deployment.image,
        "envProcess": deployment.env_process,
        "envVars": deployment.env_vars,
        "secrets": sorted(deployment.secrets),
        "limits": deployment.limits.to_wire() if deployment.limits else None,
    }
    env["mode"] = "classic"
    # The provider withdraws a replica's endpoint before it sends SIGTERM, and gateways learn that
    # within milliseconds through the KV watch; the watchdog's default wait before it closes its
    # listener (write_timeout, 30s, meant for load balancers that poll) would only slow scale-down.
    env["healthcheck_interval"] = _HEALTHCHECK_INTERVAL
    env.update(deployment.env_vars)
    if deployment.env_process:
        python = sys.executable
        cwd = function_dir
        env["fprocess"] = deployment.env_process
        kind = "command"
    elif bundle is not None:
        # A bundle always runs in process: its template decides the calling convention.
        python = str(bundle.python)
        cwd = bundle.root
        env["mode"] = "python"
        env["FAASBUS_HANDLER"] = str(bundle.handler_path)
        env["FAASBUS_TEMPLATE"] = bundle.lang
        identity["bundle"] = bundle.build_id
        kind = "bundle"
    else:
        raise InvalidRequest(f"{deployment.service}: neither envProcess nor a built image")
    env["port"] = "0"
    env["FAASBUS_SECRETS_DIR"] = str(secrets_dir)
    env["secret_mount_path"] = str(secrets_dir)
    env["FAASBUS_FUNCTION"] = deployment.service
    env["FAASBUS_NAMESPACE"] = deployment.namespace
    identity["python"] = python
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return ReplicaSpec(
        namespace=deployment.namespace,
        function=deployment.service,
        argv=(python, "-m", "faasbus.watchdog"),
        env=env,
        cwd=cwd,
        limits=Limits.from_spec(deployment.limits),
        secrets_dir=secrets_dir,
        run_dir=run_dir,
        spec_hash=digest,
        kind=kind,
    )
