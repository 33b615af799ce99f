"""Basic auth on ``/system/*`` when ``basic_auth=true`` (REFERENCE.md sections 1 and 10).

Credentials are read once at start from ``<secret_mount_path>/basic-auth-user`` and
``basic-auth-password`` (surrounding whitespace stripped, as OpenFaaS does); a missing file stops
the provider at start with the path in the message. A request without ``Authorization``, with a
``Bearer`` token (faas-cli sends an empty one when not logged in), or with wrong credentials gets
``401`` and ``WWW-Authenticate: Basic realm="Restricted"``. User and password are both compared
in constant time. ``/healthz`` and ``/function/*`` stay open, as in OpenFaaS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from faasbus.bus import SettingsError
from faasbus.bus.basic_auth import basic_auth_matches

__all__ = ["Credentials", "basic_auth_middleware"]

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="Restricted"'}


@dataclass(frozen=True)
class Credentials:
    user: bytes
    password: bytes

    @classmethod
    def load(cls, directory: Path) -> Credentials:
        values: list[bytes] = []
        for name in ("basic-auth-user", "basic-auth-password"):
            path = directory / name
            try:
                values.append(path.read_bytes().strip())
            except OSError as exc:
                raise SettingsError(
                    "secret_mount_path", str(directory),
                    f"a directory holding {name} when basic_auth=true ({exc.strerror})",
                ) from None  # fmt: skip
        return cls(user=values[0], password=values[1])

    def accepts(self, header: str) -> bool:
        return basic_auth_matches(header, self.user, self.password)


def _protected(path: str) -> bool:
    return path == "/system" or path.startswith("/system/")


def basic_auth_middleware(credentials: Credentials) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _protected(request.path) and not credentials.accepts(
            request.headers.get("Authorization", "")
        ):
            raise web.HTTPUnauthorized(
                text="unauthorized: valid basic auth credentials are required\n",
                headers=_CHALLENGE,
            )
        return await handler(request)

    return middleware
