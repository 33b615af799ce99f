"""structlog set up once per watchdog process, always writing to stderr.

stdout is reserved for the single announce line a supervisor reads to learn the port, so every
log line, including the function's own output in ``http`` mode, goes to stderr: JSON when stderr
is not a terminal (a supervisor collects it), a console renderer when it is.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

__all__ = ["configure_logging", "get_logger", "write_raw"]


def configure_logging(*, debug: bool = False, stream: TextIO | None = None) -> None:
    """Configure structlog for this process; call once, from ``main()``."""
    out = sys.stderr if stream is None else stream
    renderer: structlog.typing.Processor
    if out.isatty():
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if debug else logging.INFO
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger bound to the watchdog component and `name` (the module)."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(
        component="watchdog", module=name
    )
    return logger


def write_raw(line: str) -> None:
    """Copy a function's output line to stderr untouched (``prefix_logs=false``)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
