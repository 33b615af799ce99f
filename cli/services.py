"""Which services ``faasbus up`` runs, in start order, and the environment each one gets.

The list is data: adding a component is one :class:`ServiceSpec` line in :func:`service_specs`.
A spec is included only when its module can run (``python -m <module>`` finds a ``__main__``) and,
for optional connectors, when it is configured, so the launcher works at every stage of the
project. The provider and gateway are required: without them ``up`` refuses to start.

Each child gets the launcher's environment (PATH, HOME, a proxy, ...) with the faasbus settings set
explicitly on top, so a stray ``port`` in the user's shell cannot leak into a component:

==========================  =================================================================
FAASBUS_NATS_URL            the embedded nats-server, or ``--nats-url``
FAASBUS_STATE_DIR           the state directory (function store, bundles, secrets, logs)
basic_auth                  ``true`` (ARCHITECTURE.md section 8)
secret_mount_path           ``<state dir>/secrets`` holding basic-auth-user / -password
port                        the service's own port (provider: a free loopback port)
functions_provider_url      gateway only: ``http://127.0.0.1:<provider port>/``
FAASBUS_UP_TOKEN            marks the processes of this run (see :mod:`procscan`)
FAASBUS_QUEUE_WORKERS       (read by ``up``) how many queue worker processes to run, default 1
FAASBUS_NATS_CONNECTOR      (read by ``up``) ``true`` runs the NATS connector (so does setting
                            FAASBUS_NATS_SUBJECT_PREFIX)
==========================  =================================================================
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from faasbus.cli.errors import CliError
from faasbus.cli.procscan import TOKEN_VARIABLE

__all__ = [
    "ServiceContext",
    "ServiceSpec",
    "common_env",
    "module_runnable",
    "runnable_specs",
    "service_specs",
]


def module_runnable(module: str) -> bool:
    """True when ``python -m module`` would run: the package has a ``__main__``.

    Looked up on disk below the component's folder rather than with ``find_spec`` on the module
    itself, which would import its parent packages (``faasbus.connectors.kafka`` imports aiokafka):
    the supervisor stays small (bench/up_memory.py).
    """
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(".".join(parts[:2]))
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if len(parts) == 2 and spec.submodule_search_locations is None:
        return False
    locations = spec.submodule_search_locations or []
    return any(Path(location, *parts[2:], "__main__.py").is_file() for location in locations)


@dataclass(frozen=True)
class ServiceContext:
    """What the launcher decided before starting anything."""

    state_dir: Path
    nats_url: str
    gateway_port: int
    provider_port: int
    token: str
    base_env: Mapping[str, str]


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its module, extra environment, and how to tell it is ready.

    port        probed at ``http://127.0.0.1:<port><health_path>`` until it answers 200; None means
                ready once started (workers and connectors serve nothing)
    required    ``up`` fails when the module is missing or never gets ready
    enabled     extra condition (a connector configured); the module must also be runnable
    """

    name: str
    module: str
    env: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None
    health_path: str = "/healthz"
    required: bool = False
    enabled: Callable[[Mapping[str, str]], bool] = lambda _env: True

    def argv(self) -> tuple[str, ...]:
        return (sys.executable, "-m", self.module)

    def health_url(self) -> str | None:
        return None if self.port is None else f"http://127.0.0.1:{self.port}{self.health_path}"


def common_env(ctx: ServiceContext) -> dict[str, str]:
    env = dict(ctx.base_env)
    env.update(
        {
            "FAASBUS_NATS_URL": ctx.nats_url,
            "FAASBUS_STATE_DIR": str(ctx.state_dir),
            "basic_auth": "true",
            "secret_mount_path": str(ctx.state_dir / "secrets"),
            TOKEN_VARIABLE: ctx.token,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("port", None)
    return env


def _set(variable: str) -> Callable[[Mapping[str, str]], bool]:
    """Enabled when ``variable`` is set in the launcher's environment."""
    return lambda env: bool(env.get(variable, "").strip())


def _any_set(*variables: str) -> Callable[[Mapping[str, str]], bool]:
    """Enabled when any of ``variables`` is set (a boolean one must not say false)."""

    def enabled(env: Mapping[str, str]) -> bool:
        values = [env.get(v, "").strip().lower() for v in variables]
        return any(value and value not in ("0", "false", "no", "off") for value in values)

    return enabled


def _worker_count(env: Mapping[str, str]) -> int:
    raw = env.get("FAASBUS_QUEUE_WORKERS", "1").strip() or "1"
    if not raw.isdigit():
        raise CliError(f"FAASBUS_QUEUE_WORKERS={raw!r} is not valid: expected a whole number")
    return int(raw)


def service_specs(ctx: ServiceContext) -> list[ServiceSpec]:
    """Every service this ``up`` could run, in start order (stopped in reverse)."""
    common = common_env(ctx)
    provider_url = f"http://127.0.0.1:{ctx.provider_port}/"
    return [
        ServiceSpec(
            "provider",
            "faasbus.provider",
            {**common, "port": str(ctx.provider_port)},
            port=ctx.provider_port,
            required=True,
        ),
        ServiceSpec(
            "gateway",
            "faasbus.gateway",
            {**common, "port": str(ctx.gateway_port), "functions_provider_url": provider_url},
            port=ctx.gateway_port,
            required=True,
        ),
        # FAASBUS_QUEUE_WORKERS worker processes (default 1) share every function's consumer.
        *(
            ServiceSpec(
                f"queue-worker-{index}" if index else "queue-worker", "faasbus.queue_worker", common
            )
            for index in range(_worker_count(ctx.base_env))
        ),
        ServiceSpec("cron", "faasbus.connectors.cron", common),
        ServiceSpec(
            "nats-connector",
            "faasbus.connectors.nats",
            common,
            enabled=_any_set("FAASBUS_NATS_CONNECTOR", "FAASBUS_NATS_SUBJECT_PREFIX"),
        ),
        # Connectors to external systems run only when configured (REFERENCE.md section 4 names).
        ServiceSpec("kafka", "faasbus.connectors.kafka", common, enabled=_set("broker_hosts")),
        ServiceSpec("sqs", "faasbus.connectors.sqs", common, enabled=_set("queue_url")),
    ]


def runnable_specs(ctx: ServiceContext) -> tuple[list[ServiceSpec], list[ServiceSpec]]:
    """``(to run, required but missing)``."""
    run: list[ServiceSpec] = []
    missing: list[ServiceSpec] = []
    for spec in service_specs(ctx):
        if not module_runnable(spec.module):
            if spec.required:
                missing.append(spec)
            continue
        if spec.enabled(ctx.base_env):
            run.append(spec)
    return run, missing
