"""Deploying stack functions the way faas-cli does, so faasbus and faas-cli stay interchangeable.

faas-cli 0.18 sends ``PUT /system/functions`` (update) first and falls back to ``POST`` (create)
only when the gateway answers ``404`` (REFERENCE.md section 10); both must answer ``200`` or
``202``. ``faasbus deploy`` and ``faasbus up`` use the same two requests, after building the
functions that need a bundle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from faasbus.cli.build import BuildResult, build_functions
from faasbus.cli.client import GatewayClient
from faasbus.cli.stack import StackFunction

__all__ = ["DeployResult", "build_and_deploy", "deploy_function"]

_OK = (200, 201, 202)


@dataclass(frozen=True)
class DeployResult:
    """One function deployed: whether it was created (POST) or updated (PUT), and the status."""

    name: str
    created: bool
    status: int


def deploy_function(client: GatewayClient, fn: StackFunction) -> DeployResult:
    """PUT, then POST when the gateway says the function does not exist yet."""
    body = fn.deploy_body()
    response = client.request("PUT", "/system/functions", json_body=body)
    if response.status == 404:
        response.body()
        response = client.request("POST", "/system/functions", json_body=body)
        response.check(*_OK, what=f"deploy function {fn.name!r}")
        response.body()
        return DeployResult(fn.name, created=True, status=response.status)
    response.check(*_OK, what=f"update function {fn.name!r}")
    response.body()
    return DeployResult(fn.name, created=False, status=response.status)


def build_and_deploy(
    client: GatewayClient,
    functions: Iterable[StackFunction],
    state_dir: Path,
    *,
    on_build: Callable[[BuildResult], None] | None = None,
    on_deploy: Callable[[DeployResult], None] | None = None,
) -> list[DeployResult]:
    """Build every function first (a build error deploys nothing), then deploy each in order."""
    selected = list(functions)
    build_functions(selected, state_dir, on_result=on_build)
    results: list[DeployResult] = []
    for fn in selected:
        result = deploy_function(client, fn)
        results.append(result)
        if on_deploy is not None:
            on_deploy(result)
    return results
