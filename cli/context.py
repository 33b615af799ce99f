"""State shared by every command of one ``faasbus`` run: the global options, resolved lazily.

Resolving is lazy because local commands (``new``, ``build``, ``up``) must not need a gateway or
credentials, and because a stack file may supply the gateway (``provider.gateway``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from faasbus.cli.client import GatewayClient
from faasbus.cli.settings import ClientSettings

__all__ = ["AppContext", "json_option", "namespace_option", "pass_app"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    """The global options as given; :meth:`settings` applies the precedence rules."""

    gateway: str | None = None
    user: str | None = None
    password: str | None = None
    state_dir: Path | None = None
    _settings: ClientSettings | None = field(default=None, repr=False)

    def settings(self) -> ClientSettings:
        if self._settings is None:
            self._settings = ClientSettings.resolve(
                gateway=self.gateway,
                user=self.user,
                password=self.password,
                state_dir=self.state_dir,
            )
        return self._settings

    def client(
        self, settings: ClientSettings | None = None, *, timeout_s: float | None = 30.0
    ) -> GatewayClient:
        chosen = settings or self.settings()
        return GatewayClient(
            chosen.gateway, user=chosen.user, password=chosen.password, timeout_s=timeout_s
        )


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def namespace_option(func: F) -> F:
    return click.option(
        "--namespace",
        "-n",
        default=None,
        metavar="NS",
        help="Function namespace (default: the gateway's, openfaas-fn).",
    )(func)


def json_option(func: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table."
    )(func)
