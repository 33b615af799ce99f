"""Errors of the ``faasbus`` command: each becomes one line on stderr and a non-zero exit.

    CliError                  base; ``str(error)`` is the whole message a user sees
    ├── StackError            stack.yml cannot be read or a field is wrong (``field`` names it)
    ├── GatewayError          the gateway answered with a status the command cannot use
    │   ├── AuthError         401: credentials missing or refused
    │   └── NotFoundError     404: the function, secret or namespace does not exist
    ├── GatewayUnreachable    no HTTP answer at all (refused, DNS, timeout, reset)
    ├── BuildError            a function could not be built into a bundle
    ├── ScaffoldError         ``faasbus new`` would overwrite something or has no template
    └── LauncherError         ``faasbus up`` could not start (port taken, a service never ready)

Third-party errors (``OSError``, ``yaml.YAMLError``, ``http.client`` errors) are wrapped at the
boundary with ``raise ... from exc``; the command group maps every :class:`CliError` to one line on
stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BuildError",
    "CliError",
    "GatewayError",
    "GatewayUnreachable",
    "LauncherError",
    "NotFoundError",
    "ScaffoldError",
    "StackError",
]


class CliError(Exception):
    """A failure the user can act on; the message is printed as it is."""


class StackError(CliError):
    """A stack file problem; ``field`` is the dotted path (``functions.echo.environment``)."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        where = f"{path}: {field}: " if field else f"{path}: "
        super().__init__(where + problem)
        self.path = path
        self.field = field
        self.problem = problem


class GatewayError(CliError):
    """The gateway answered ``status``; ``detail`` is the first line of its body."""

    def __init__(self, message: str, *, status: int, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class AuthError(GatewayError):
    """401 from ``/system/*``."""


class NotFoundError(GatewayError):
    """404: what was asked for does not exist."""


class GatewayUnreachable(CliError):
    """The gateway could not be reached at ``url``."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class BuildError(CliError):
    """A function could not be built."""


class ScaffoldError(CliError):
    """``faasbus new`` refused to scaffold."""


class LauncherError(CliError):
    """``faasbus up`` could not bring the stack up."""
