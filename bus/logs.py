"""structlog set up once per entrypoint: JSON off a terminal, a console renderer on one.

Libraries only call ``structlog.get_logger()``; the process's ``main()`` calls
:func:`configure_logging` before anything logs. ``call_id``, ``function`` and ``subject`` are bound
with contextvars per request or message (``structlog.contextvars.bound_contextvars``).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

__all__ = ["configure_logging"]


def configure_logging(component: str, *, level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog (and stdlib logging) to ``stream`` (stderr by default)."""
    out = stream if stream is not None else sys.stderr
    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor
    if out.isatty():
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()

    def add_component(
        _logger: object, _method: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        # A processor rather than a contextvar: reader threads do not inherit contextvars.
        event.setdefault("component", component)
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_component,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    # Third-party libraries (nats, aiohttp) log through stdlib logging: keep their warnings.
    logging.basicConfig(stream=out, level=max(numeric_level, logging.WARNING), force=True)
