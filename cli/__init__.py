"""faasbus.cli — the ``faasbus`` command: a thin client of the gateway API, plus ``faasbus up``.

Gateway commands (deploy, remove, list, describe, invoke, logs, scale, secret) talk only HTTP to
the OpenFaaS-compatible gateway. Local commands work on this machine: ``new`` scaffolds from the
watchdog's templates, ``build`` uses the provider's bundle builder, ``up`` launches the stack.
"""

from faasbus.cli.app import cli
from faasbus.cli.client import GatewayClient, Response
from faasbus.cli.deploy import DeployResult, build_and_deploy, deploy_function
from faasbus.cli.errors import (
    AuthError,
    BuildError,
    CliError,
    GatewayError,
    GatewayUnreachable,
    LauncherError,
    NotFoundError,
    ScaffoldError,
    StackError,
)
from faasbus.cli.launcher import UpSettings, default_stack_file, run_up
from faasbus.cli.services import ServiceContext, ServiceSpec, service_specs
from faasbus.cli.settings import ClientSettings, default_state_dir, read_credentials
from faasbus.cli.stack import TEMPLATE_LANGS, Stack, StackFunction, load_stack

__all__ = [
    "TEMPLATE_LANGS",
    "AuthError",
    "BuildError",
    "CliError",
    "ClientSettings",
    "DeployResult",
    "GatewayClient",
    "GatewayError",
    "GatewayUnreachable",
    "LauncherError",
    "NotFoundError",
    "Response",
    "ScaffoldError",
    "ServiceContext",
    "ServiceSpec",
    "Stack",
    "StackError",
    "StackFunction",
    "UpSettings",
    "build_and_deploy",
    "cli",
    "default_stack_file",
    "default_state_dir",
    "deploy_function",
    "load_stack",
    "read_credentials",
    "run_up",
    "service_specs",
]
