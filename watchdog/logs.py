"""Logging for the watchdog process: one JSON object per line on stderr.

stdout is reserved for the single announce line a supervisor reads to learn the port, so every
log line, including the function's own output in ``http`` mode, goes to stderr: JSON when stderr
is not a terminal (a supervisor collects it), ``time [level] event key=value`` when it is.

Why not structlog, as the other components use: the watchdog runs inside every replica, and
``import structlog`` also imports its optional pretty-printer dependency (rich, installed with the
CLI), about 4 MiB of RSS per replica for renderers a replica never uses. The records keep
structlog's shape (``event``, ``level``, ``timestamp``, keyword fields, ``exception``), so the
provider and log readers see the same lines as before.
"""

from __future__ import annotations

import json
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["Logger", "configure_logging", "get_logger", "write_raw"]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class _Config:
    """Process-wide: set once by :func:`configure_logging` from ``main()``."""

    stream: TextIO | None = None
    minimum = _LEVELS["info"]
    console = False


class Logger:
    """``log.info("event_name", key=value)``, the structlog calling convention."""

    def __init__(self, module: str) -> None:
        self._module = module

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        if _LEVELS[level] < _Config.minimum:
            return
        exc = fields.pop("exc_info", None)
        record: dict[str, Any] = {"component": "watchdog", "module": self._module}
        record.update(fields)
        record.update(
            event=event, level=level, timestamp=datetime.now(UTC).isoformat().replace("+00:00", "Z")
        )
        if isinstance(exc, BaseException):
            record["exception"] = "".join(traceback.format_exception(exc)).rstrip()
        out = _Config.stream or sys.stderr
        if _Config.console:
            extra = " ".join(f"{k}={v}" for k, v in fields.items())
            line = f"{record['timestamp']} [{level:<7}] {event} {extra}".rstrip()
            if "exception" in record:
                line += "\n" + record["exception"]
        else:
            line = json.dumps(record, default=str)
        out.write(line + "\n")
        out.flush()

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)


def configure_logging(*, debug: bool = False, stream: TextIO | None = None) -> None:
    """Set the level and the stream for this process; call once, from ``main()``."""
    _Config.stream = sys.stderr if stream is None else stream
    _Config.minimum = _LEVELS["debug" if debug else "info"]
    _Config.console = _Config.stream.isatty()


def get_logger(name: str) -> Logger:
    """A logger for the module ``name``."""
    return Logger(name)


def write_raw(line: str) -> None:
    """Copy a function's output line to stderr untouched (``prefix_logs=false``)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
