"""Watchdog settings: every OpenFaaS watchdog variable, read once from an injected mapping.

The names and defaults are those of the OpenFaaS classic watchdog and of-watchdog
(REFERENCE.md section 5); faasbus's own settings start with ``FAASBUS_``. A malformed value fails
at start with a `ConfigError` naming the variable, where OpenFaaS would silently fall back to
the default.

Variables (defaults in brackets):

``fprocess`` / ``function_process`` [none]
    The function's command line, split on spaces (no shell). ``function_process`` wins when both
    are set, as in OpenFaaS.
``mode`` [``classic`` when ``fprocess`` is set, ``python`` when only ``FAASBUS_HANDLER`` is]
    ``classic``, ``streaming``, ``serializing``, ``http``, ``static`` or ``python``.
``upstream_url`` / ``http_upstream_url`` [none; required by ``http``]
    Where the warm ``http``-mode process listens.
``port`` [8080]
    TCP port; ``0`` picks a free one (read it from the announce line).
``FAASBUS_LISTEN_HOST`` [127.0.0.1]
    Address to bind.
``read_timeout`` [30s]
    Bound on reading a request body.
``write_timeout`` [30s]
    No call outlives it (a Go ``http.Server`` could no longer write the answer), and a SIGTERM
    drains in-flight calls for at most this long. Must be above zero.
``exec_timeout`` [0 = off in ``classic``, 30s in every other mode]
    Bound on one function call. The ``X-Timeout`` request header may shorten it, never lengthen.
``healthcheck_interval`` [``write_timeout``]
    After SIGTERM, how long ``/_/health`` answers 503 while calls are still served, before the
    listener closes: time for routers to notice and stop sending traffic here (OpenFaaS).
``max_inflight`` [0 = unlimited]
    Concurrent function calls; one more is answered ``429`` with ``X-OpenFaaS-Internal``.
``cgi_headers`` [true]
    Expose request headers to STDIO functions as ``Http_*`` environment variables.
``marshal_request`` [false]
    ``classic``: stdin receives ``{"header": {...}, "body": {"raw": "<base64>"}}``.
``content_type`` [empty]
    Forces the response Content-Type; empty means "the request's".
``combine_output`` [true]
    ``classic``: the function's stderr is part of the response; when false it goes to the log.
``write_debug`` [false]
    Log each call and its output; put tracebacks in python-mode 500 bodies.
``suppress_lock`` [false]
    Do not write the lock file; ``/_/health`` then depends only on readiness.
``prefix_logs`` [true]
    Child output is logged as structured events with the stream name; when false the raw lines
    are copied to stderr.
``buffer_http`` / ``http_buffer_req_body`` [false]
    ``http``: read a chunked request body fully before forwarding it (some servers reject chunked).
``static_path`` [/home/app/public]
    ``static``: the folder served.
``ready_path`` [empty]
    When set, ``/_/ready`` calls the function with ``GET <ready_path>`` and answers what it does.
``FAASBUS_LOCK_FILE`` [``<tempdir>/.lock-<pid>``]
    The lock file (OpenFaaS uses ``/tmp/.lock``; one per process lets replicas share a machine).
``FAASBUS_HANDLER`` [none; required by ``python``]
    ``path/to/handler.py[:function]`` (function ``handle`` by default); a folder means its
    ``handler.py``.
``FAASBUS_TEMPLATE`` [python3-http]
    ``python3`` (``handle(req: str) -> str``) or ``python3-http`` (``handle(event, context)``).
``FAASBUS_MAX_BODY_BYTES`` [64 MiB]
    Largest request body accepted (``413`` above it).
``HOSTNAME`` [``socket.gethostname()``]
    Given to python3-http handlers as ``context.hostname``.
"""

from __future__ import annotations

import math
import os
import re
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from faasbus.watchdog.errors import ConfigError

__all__ = ["Mode", "Template", "WatchdogConfig", "parse_bool", "parse_duration"]

_DURATION_UNITS_S = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,  # Go's time.ParseDuration accepts the micro sign
    "ns": 1e-9,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class Mode(StrEnum):
    """How the watchdog runs the function."""

    CLASSIC = "classic"
    STREAMING = "streaming"
    SERIALIZING = "serializing"
    HTTP = "http"
    STATIC = "static"
    PYTHON = "python"


class Template(StrEnum):
    """The handler signature python mode calls."""

    PYTHON3 = "python3"
    PYTHON3_HTTP = "python3-http"


def parse_duration(text: str) -> float:
    """Seconds in `text`: a bare number of seconds (``10``) or Go syntax (``1m30s``, ``500ms``).

    Raises ValueError on anything else, including negative values.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError("a duration must be a finite number of seconds, at least 0")
        return seconds
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
        position = match.end()
    if position != len(value) or position == 0:
        raise ValueError("expected a duration like 10, 10s, 1m30s or 500ms")
    return total


def parse_bool(text: str) -> bool:
    """true/false, 1/0, yes/no, on/off (any case)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected true/false, 1/0 or yes/no")


class _Reader:
    """Typed access to the environment mapping; every error names its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def raw(self, *names: str) -> tuple[str, str] | None:
        """The last of `names` that is set to a non-empty value, with its name."""
        found: tuple[str, str] | None = None
        for name in names:
            value = self._environ.get(name)
            if value is not None and value.strip():
                found = (name, value)
        return found

    def string(self, *names: str, default: str = "") -> str:
        found = self.raw(*names)
        return default if found is None else found[1].strip()

    def boolean(self, *names: str, default: bool) -> bool:
        found = self.raw(*names)
        if found is None:
            return default
        try:
            return parse_bool(found[1])
        except ValueError as exc:
            raise ConfigError(found[0], found[1], str(exc)) from exc

    def duration(self, name: str, default: float) -> float:
        found = self.raw(name)
        if found is None:
            return default
        try:
            return parse_duration(found[1])
        except ValueError as exc:
            raise ConfigError(name, found[1], str(exc)) from exc

    def integer(self, name: str, default: int, *, low: int, high: int | None = None) -> int:
        found = self.raw(name)
        if found is None:
            return default
        try:
            number = int(found[1].strip())
        except ValueError as exc:
            raise ConfigError(name, found[1], "expected a whole number") from exc
        if number < low or (high is not None and number > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigError(name, found[1], f"must be {bound}")
        return number


@dataclass(frozen=True, slots=True)
class WatchdogConfig:
    """Everything the watchdog reads from its environment; see the module docstring."""

    mode: Mode
    fprocess: tuple[str, ...] = ()
    upstream_url: str = ""
    listen_host: str = "127.0.0.1"
    port: int = 8080
    read_timeout_s: float = DEFAULT_TIMEOUT_S
    write_timeout_s: float = DEFAULT_TIMEOUT_S
    exec_timeout_s: float = 0.0
    healthcheck_interval_s: float = DEFAULT_TIMEOUT_S
    max_inflight: int = 0
    cgi_headers: bool = True
    marshal_request: bool = False
    content_type: str = ""
    combine_output: bool = True
    write_debug: bool = False
    suppress_lock: bool = False
    prefix_logs: bool = True
    buffer_http: bool = False
    static_path: Path = Path("/home/app/public")
    ready_path: str = ""
    lock_file: Path = Path(tempfile.gettempdir()) / ".lock"
    handler_path: Path | None = None
    handler_function: str = "handle"
    template: Template = Template.PYTHON3_HTTP
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    hostname: str = "localhost"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, pid: int | None = None) -> WatchdogConfig:
        """Build the settings from `environ` (normally ``os.environ``).

        `pid` names the default lock file (``<tempdir>/.lock-<pid>``); it defaults to this
        process's id. Raises `ConfigError` naming the first bad variable.
        """
        env = _Reader(environ)
        command = env.string("fprocess", "function_process")
        handler = env.string("FAASBUS_HANDLER")
        mode = _mode(env, has_command=bool(command), has_handler=bool(handler))

        fprocess = tuple(command.split())
        if mode in {Mode.CLASSIC, Mode.STREAMING, Mode.SERIALIZING, Mode.HTTP} and not fprocess:
            raise ConfigError("fprocess", None, f"mode {mode.value} needs a command to run")
        upstream_url = env.string("upstream_url", "http_upstream_url").rstrip("/")
        if mode is Mode.HTTP:
            _check_upstream(upstream_url)

        handler_path: Path | None = None
        handler_function = "handle"
        if mode is Mode.PYTHON:
            handler_path, handler_function = _handler(handler)
        template_name = env.string("FAASBUS_TEMPLATE", default=Template.PYTHON3_HTTP.value)
        try:
            template = Template(template_name)
        except ValueError as exc:
            names = ", ".join(t.value for t in Template)
            raise ConfigError(
                "FAASBUS_TEMPLATE", template_name, f"expected one of {names}"
            ) from exc

        write_timeout_s = env.duration("write_timeout", DEFAULT_TIMEOUT_S)
        if write_timeout_s <= 0:
            raise ConfigError("write_timeout", env.string("write_timeout"), "must be above 0s")
        exec_default_s = 0.0 if mode is Mode.CLASSIC else DEFAULT_TIMEOUT_S

        lock_default = Path(tempfile.gettempdir()) / f".lock-{os.getpid() if pid is None else pid}"
        lock_file = env.string("FAASBUS_LOCK_FILE")
        return cls(
            mode=mode,
            fprocess=fprocess,
            upstream_url=upstream_url,
            listen_host=env.string("FAASBUS_LISTEN_HOST", default="127.0.0.1"),
            port=env.integer("port", 8080, low=0, high=65535),
            read_timeout_s=env.duration("read_timeout", DEFAULT_TIMEOUT_S),
            write_timeout_s=write_timeout_s,
            exec_timeout_s=env.duration("exec_timeout", exec_default_s),
            healthcheck_interval_s=env.duration("healthcheck_interval", write_timeout_s),
            max_inflight=env.integer("max_inflight", 0, low=0),
            cgi_headers=env.boolean("cgi_headers", default=True),
            marshal_request=env.boolean("marshal_request", default=False),
            content_type=env.string("content_type"),
            combine_output=env.boolean("combine_output", default=True),
            write_debug=env.boolean("write_debug", default=False),
            suppress_lock=env.boolean("suppress_lock", default=False),
            prefix_logs=env.boolean("prefix_logs", default=True),
            buffer_http=env.boolean("buffer_http", "http_buffer_req_body", default=False),
            static_path=Path(env.string("static_path", default="/home/app/public")),
            ready_path=_ready_path(env.string("ready_path")),
            lock_file=Path(lock_file) if lock_file else lock_default,
            handler_path=handler_path,
            handler_function=handler_function,
            template=template,
            max_body_bytes=env.integer("FAASBUS_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, low=1),
            hostname=env.string("HOSTNAME") or socket.gethostname(),
        )


def _mode(env: _Reader, *, has_command: bool, has_handler: bool) -> Mode:
    name = env.string("mode").lower()
    if not name:
        if has_command:
            return Mode.CLASSIC
        if has_handler:
            return Mode.PYTHON
        raise ConfigError("fprocess", None, "set fprocess (or FAASBUS_HANDLER, or mode=static)")
    try:
        return Mode(name)
    except ValueError as exc:
        names = ", ".join(m.value for m in Mode)
        raise ConfigError("mode", name, f"expected one of {names}") from exc


def _check_upstream(url: str) -> None:
    if not url:
        raise ConfigError("upstream_url", None, "mode http needs the URL the function listens on")
    match = re.fullmatch(r"http://(\[[^\]]+\]|[^/:]+)(:\d+)?(/.*)?", url)
    if match is None:
        raise ConfigError("upstream_url", url, "expected http://HOST:PORT")


def _handler(spec: str) -> tuple[Path, str]:
    if not spec:
        raise ConfigError(
            "FAASBUS_HANDLER", None, "mode python needs path/to/handler.py[:function]"
        )
    path_text, function = spec, "handle"
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isidentifier():
        path_text, function = head, tail
    path = Path(path_text).expanduser()
    if path.is_dir():
        path /= "handler.py"
    if not path.is_file():
        raise ConfigError("FAASBUS_HANDLER", spec, f"no such file: {path}")
    return path.resolve(), function


def _ready_path(path: str) -> str:
    if path and not path.startswith("/"):
        return "/" + path
    return path
