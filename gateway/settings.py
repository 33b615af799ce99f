"""The gateway's settings, read once at start from an injected environment mapping.

OpenFaaS names are kept where the OpenFaaS gateway has one (``read_timeout``, ``write_timeout``,
``upstream_timeout``, ``functions_provider_url``, ``basic_auth``, ``secret_mount_path``,
``scale_from_zero``); faasbus's own start with ``FAASBUS_``. A bad value stops the process at start
with the variable's name in the message (:class:`faasbus.bus.SettingsError`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from faasbus.bus import BusSettings, Env, SettingsError

__all__ = ["UPSTREAM_CLIENTS", "GatewaySettings", "parse_size"]

UPSTREAM_CLIENTS = frozenset({"pool", "aiohttp"})

_MIB = 1024 * 1024
_SIZE = re.compile(r"(\d+)\s*(|b|k|kb|ki|kib|m|mb|mi|mib|g|gb|gi|gib)", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "ki": 1024,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mi": 1024**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gi": 1024**3,
    "gib": 1024**3,
}


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``1048576``, ``512k``, ``32Mi``, ``1GB``; ValueError when malformed."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class GatewaySettings:
    """Everything the gateway process reads from its environment.

    port                     port                          8080; 0 picks a free port (announced
                                                           on stdout)
    listen_host              FAASBUS_LISTEN_HOST           127.0.0.1
    functions_provider_url   functions_provider_url        http://127.0.0.1:8081: where /system/*
                                                           is forwarded (any faas-provider)
    upstream_timeout_s       upstream_timeout              60s: a function call longer than this
                                                           answers 504 (the whole exchange,
                                                           response body included)
    read_timeout_s           read_timeout                  60s: longest wait for the next piece of
                                                           a client's request body (then 408)
    write_timeout_s          write_timeout                 60s: longest wait for a client to take
                                                           the next piece of a streamed response
    max_body_size            max_body_size                 32 MiB: a larger request body answers
                                                           413 (accepts 1048576, 512k, 32Mi, 1GB)
    scale_from_zero          scale_from_zero               true: hold a request for a function
                                                           with no ready replica while one starts
    scale_from_zero_wait_s   FAASBUS_SCALE_FROM_ZERO_WAIT  30s: how long such a request is held
                                                           before 503
    basic_auth               basic_auth                    false: protect /system/* and /ui
    secret_mount_path        secret_mount_path             /var/openfaas/secrets: holds
                                                           basic-auth-user, basic-auth-password
    health_cache_s           FAASBUS_HEALTH_CACHE          3s: how long /healthz reuses the
                                                           provider's last answer
    shutdown_timeout_s       FAASBUS_SHUTDOWN_TIMEOUT      10s: on SIGTERM, how long in-flight
                                                           requests may finish
    upstream_client          FAASBUS_UPSTREAM_CLIENT       pool: the lean keep-alive client for
                                                           replica calls (gateway/upstream.py);
                                                           aiohttp: aiohttp's ClientSession for all
    max_async_body_size      max_async_body_size           32 MiB: a larger async body answers
                                                           413; bodies over NATS's max payload
                                                           go through the object store
    max_result_bytes         max_result_bytes              1 MiB: how much of a stored result
                                                           /system/calls/{id}/result shows
    allow_link_local_        FAASBUS_CALLBACK_ALLOW_       false: accept link-local and
      callbacks                LINK_LOCAL                  metadata callback URLs
    bus                      FAASBUS_NATS_URL, ...         see :class:`faasbus.bus.BusSettings`
    """

    port: int = 8080
    listen_host: str = "127.0.0.1"
    functions_provider_url: str = "http://127.0.0.1:8081"
    upstream_timeout_s: float = 60.0
    read_timeout_s: float = 60.0
    write_timeout_s: float = 60.0
    max_body_size: int = 32 * _MIB
    scale_from_zero: bool = True
    scale_from_zero_wait_s: float = 30.0
    basic_auth: bool = False
    secret_mount_path: Path = Path("/var/openfaas/secrets")
    health_cache_s: float = 3.0
    shutdown_timeout_s: float = 10.0
    upstream_client: str = "pool"
    max_async_body_size: int = 32 * _MIB
    max_result_bytes: int = _MIB
    allow_link_local_callbacks: bool = False
    bus: BusSettings = field(default_factory=BusSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        env = Env(environ)
        defaults = cls()
        port = env.integer("port", defaults.port, minimum=0)
        if port > 65535:
            raise SettingsError("port", str(port), "a port number from 0 to 65535")
        provider_url = env.text("functions_provider_url", defaults.functions_provider_url)
        if not provider_url.startswith(("http://", "https://")):
            raise SettingsError("functions_provider_url", provider_url, "an http(s) URL")
        return cls(
            port=port,
            listen_host=env.text("FAASBUS_LISTEN_HOST", defaults.listen_host),
            functions_provider_url=provider_url.rstrip("/"),
            upstream_timeout_s=_positive(env, "upstream_timeout", defaults.upstream_timeout_s),
            read_timeout_s=_positive(env, "read_timeout", defaults.read_timeout_s),
            write_timeout_s=_positive(env, "write_timeout", defaults.write_timeout_s),
            max_body_size=_size(env, "max_body_size", defaults.max_body_size),
            scale_from_zero=env.flag("scale_from_zero", defaults.scale_from_zero),
            scale_from_zero_wait_s=env.duration(
                "FAASBUS_SCALE_FROM_ZERO_WAIT", defaults.scale_from_zero_wait_s
            ),
            basic_auth=env.flag("basic_auth", defaults.basic_auth),
            secret_mount_path=Path(env.text("secret_mount_path", str(defaults.secret_mount_path))),
            health_cache_s=env.duration("FAASBUS_HEALTH_CACHE", defaults.health_cache_s),
            shutdown_timeout_s=env.duration(
                "FAASBUS_SHUTDOWN_TIMEOUT", defaults.shutdown_timeout_s
            ),
            upstream_client=env.choice(
                "FAASBUS_UPSTREAM_CLIENT", defaults.upstream_client, UPSTREAM_CLIENTS
            ),
            max_async_body_size=_size(env, "max_async_body_size", defaults.max_async_body_size),
            max_result_bytes=_size(env, "max_result_bytes", defaults.max_result_bytes),
            allow_link_local_callbacks=env.flag(
                "FAASBUS_CALLBACK_ALLOW_LINK_LOCAL", defaults.allow_link_local_callbacks
            ),
            bus=BusSettings.from_env(environ),
        )

    @property
    def function_wait_s(self) -> float:
        """How long a function request may wait for a ready replica (0: fail at once)."""
        return self.scale_from_zero_wait_s if self.scale_from_zero else 0.0


def _positive(env: Env, name: str, default_s: float) -> float:
    value = env.duration(name, default_s)
    if value <= 0:
        raise SettingsError(name, str(value), "a duration above zero")
    return value


def _size(env: Env, name: str, default: int) -> int:
    found = env.raw(name)
    if found is None:
        return default
    try:
        value = parse_size(found[1])
    except ValueError:
        raise SettingsError(found[0], found[1], "a size such as 1048576, 512k or 32Mi") from None
    if value <= 0:
        raise SettingsError(found[0], found[1], "a size above zero")
    return value
