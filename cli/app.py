"""The ``faasbus`` click group: global options and the command table.

Global options (``--gateway``, ``--user``, ``--password``, ``--state-dir``) are accepted both
before and after the command name (``faasbus --gateway URL list`` and ``faasbus list --gateway
URL``, as faas-cli users type them); environment variables are read once, at the group level, so a
flag always wins over the environment.

A :class:`CliError` raised by any command becomes one ``faasbus: <message>`` line on stderr and its
exit code (1), through click's own exception path, so the behaviour is the same under
``CliRunner`` and in a terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from faasbus.cli import cmd_calls, cmd_functions, cmd_local
from faasbus.cli.cmd_secrets import secret
from faasbus.cli.context import AppContext
from faasbus.cli.errors import CliError

__all__ = ["cli"]

F = TypeVar("F", bound=Callable[..., Any])

_GLOBAL_OPTIONS: tuple[tuple[str, str, str | None, str, Any], ...] = (
    (
        "--gateway",
        "gateway",
        "OPENFAAS_URL",
        "Gateway URL [env OPENFAAS_URL; default http://127.0.0.1:8080].",
        None,
    ),
    (
        "--user",
        "user",
        "FAASBUS_USER",
        "Basic-auth user [env FAASBUS_USER; default from the state dir].",
        None,
    ),
    (
        "--password",
        "password",
        "FAASBUS_PASSWORD",
        "Basic-auth password [env FAASBUS_PASSWORD; default from the state dir].",
        None,
    ),
    (
        "--state-dir",
        "state_dir",
        "FAASBUS_STATE_DIR",
        "State directory [env FAASBUS_STATE_DIR; default ~/.local/share/faasbus].",
        click.Path(path_type=Path, file_okay=False),
    ),
)


class CommandFailed(click.ClickException):
    """A :class:`CliError` on its way out: one line on stderr, exit code 1."""

    def __init__(self, error: CliError) -> None:
        super().__init__(str(error))
        self.error = error

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"faasbus: {self.format_message()}", err=True, file=file)


def _store(attr: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            setattr(ctx.ensure_object(AppContext), attr, value)
        return value

    return callback


def global_options(*, with_env: bool, shown: frozenset[str] = frozenset()) -> Callable[[F], F]:
    """The global options; on a subcommand (``with_env=False``) only ``shown`` appear in --help."""

    def decorate(func: F) -> F:
        # A function collects options in reverse (decorators apply bottom-up); a Command appends.
        ordered = _GLOBAL_OPTIONS if isinstance(func, click.Command) else _GLOBAL_OPTIONS[::-1]
        for flag, attr, env, help_text, kind in ordered:
            func = click.option(
                flag,
                attr,
                envvar=env if with_env else None,
                type=kind,
                expose_value=False,
                callback=_store(attr),
                help=help_text,
                hidden=not with_env and attr not in shown,
            )(func)
        return func

    return decorate


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as error:
            raise CommandFailed(error) from error


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@global_options(with_env=True)
@click.version_option(package_name="faasbus", prog_name="faasbus")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """faasbus: OpenFaaS-compatible functions on NATS JetStream.

    Start everything with `faasbus up`, then deploy, invoke and inspect functions.
    """
    ctx.ensure_object(AppContext)


_LOCAL = frozenset({"state_dir"})
_REMOTE = frozenset({"gateway", "user", "password", "state_dir"})

for _command in cmd_local.COMMANDS:
    cli.add_command(global_options(with_env=False, shown=_LOCAL)(_command))
for _command in cmd_functions.COMMANDS:
    cli.add_command(global_options(with_env=False, shown=_REMOTE)(_command))
for _sub in secret.commands.values():
    global_options(with_env=False, shown=_REMOTE)(_sub)
cli.add_command(global_options(with_env=False)(secret))
for _group in cmd_calls.GROUPS:
    for _sub in _group.commands.values():
        global_options(with_env=False, shown=_REMOTE)(_sub)
    cli.add_command(global_options(with_env=False)(_group))
