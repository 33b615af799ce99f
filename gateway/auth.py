"""Basic auth for ``/system/*`` and ``/ui`` (ARCHITECTURE.md section 8, REFERENCE.md section 10).

The gateway checks credentials itself rather than trusting the provider, so the provider can stay
on loopback without auth. Credentials are read once at start from ``<secret_mount_path>/
basic-auth-user`` and ``basic-auth-password`` (the OpenFaaS file names). A missing or
malformed ``Authorization`` header, a wrong user or password, and any ``Bearer`` token (faas-cli
sends an empty one when not logged in) all answer ``401`` with
``WWW-Authenticate: Basic realm="Restricted"``. User and password are both compared in
constant time.

Function routes stay open, as in OpenFaaS: the guard wraps individual handlers instead of being a
middleware, so the hot path pays nothing for it.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from aiohttp import web

from faasbus.bus.basic_auth import basic_auth_matches
from faasbus.gateway.errors import CredentialsError

__all__ = ["PASSWORD_FILE", "USER_FILE", "BasicAuth", "Credentials", "Handler"]

USER_FILE = "basic-auth-user"
PASSWORD_FILE = "basic-auth-password"  # noqa: S105 - a file name, not a password

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Credentials:
    user: bytes
    password: bytes

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read both files (trailing newlines stripped); :class:`CredentialsError` if unusable."""
        return cls(user=_read(directory / USER_FILE), password=_read(directory / PASSWORD_FILE))

    def header(self) -> str:
        """The ``Authorization`` value a client would send (for tests and the CLI)."""
        token = base64.b64encode(self.user + b":" + self.password).decode()
        return f"Basic {token}"


def _read(path: Path) -> bytes:
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise CredentialsError(str(path), exc.strerror or str(exc)) from exc
    if not value:
        raise CredentialsError(str(path), "is empty")
    return value


class BasicAuth:
    """Wraps handlers so they answer 401 unless the request carries the right credentials."""

    def __init__(self, credentials: Credentials | None) -> None:
        self._credentials = credentials

    @property
    def enabled(self) -> bool:
        return self._credentials is not None

    def allows(self, authorization: str | None) -> bool:
        credentials = self._credentials
        if credentials is None:
            return True
        return basic_auth_matches(authorization, credentials.user, credentials.password)

    def guard(self, handler: Handler) -> Handler:
        """``handler`` itself when auth is off, else a wrapper that checks first."""
        if self._credentials is None:
            return handler

        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self.allows(request.headers.get("Authorization")):
                raise web.HTTPUnauthorized(
                    text="unauthorized\n",
                    headers={"WWW-Authenticate": 'Basic realm="Restricted"'},
                )
            return await handler(request)

        return guarded
