"""Options and steps shared by the commands that read a stack file (new, build, deploy, remove, up).

They all take ``-f/--yaml PATH`` (``stack.yml`` by default, except remove and up) and build and
deploy take ``--filter GLOB`` with the same "nothing matches" error; defining these once keeps the
commands' flags, defaults and messages the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from faasbus.cli.errors import CliError
from faasbus.cli.stack import Stack, StackFunction

__all__ = ["filter_option", "select_functions", "stack_file_option"]

F = TypeVar("F", bound=Callable[..., Any])

_STACK_HELP = "Stack file (faas-cli format)."


def stack_file_option(
    help_text: str = _STACK_HELP, *, default: str | None = "stack.yml"
) -> Callable[[F], F]:
    """``-f/--yaml PATH`` into the ``stack_file`` parameter (a Path, or None with no default)."""

    def decorate(func: F) -> F:
        return click.option(
            "-f",
            "--yaml",
            "stack_file",
            default=default,
            show_default=default is not None,
            type=click.Path(path_type=Path),
            help=help_text,
        )(func)

    return decorate


def filter_option(func: F) -> F:
    """``--filter GLOB`` into the ``name_filter`` parameter (None: every function)."""
    return click.option(
        "--filter", "name_filter", metavar="GLOB", help="Only functions matching GLOB."
    )(func)


def select_functions(stack: Stack, name_filter: str | None) -> list[StackFunction]:
    """The functions of ``stack`` that ``name_filter`` matches; a :class:`CliError` if none."""
    selected = stack.select(name_filter)
    if not selected:
        raise CliError(f"no function in {stack.path} matches --filter {name_filter!r}")
    return selected
