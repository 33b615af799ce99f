"""faasbus.watchdog: the process in front of every function replica (OpenFaaS watchdog contract).

The watchdog imports nothing else from faasbus; other components start it as a process
(``python -m faasbus.watchdog``) and read its port from the one line it prints on stdout. This
façade is what they may import: the settings, the announce format, the templates that
``faasbus new`` scaffolds, and the entry points.
"""

from __future__ import annotations

from pathlib import Path

from faasbus.watchdog.config import Mode, Template, WatchdogConfig, parse_duration
from faasbus.watchdog.errors import ConfigError, HandlerLoadError, WatchdogError
from faasbus.watchdog.python_mode import Context, Event
from faasbus.watchdog.runner import ANNOUNCE, main, serve

__all__ = [
    "ANNOUNCE",
    "ConfigError",
    "Context",
    "Event",
    "HandlerLoadError",
    "Mode",
    "Template",
    "WatchdogConfig",
    "WatchdogError",
    "main",
    "parse_duration",
    "serve",
    "template_names",
    "template_path",
]

_TEMPLATES = Path(__file__).resolve().parent / "templates"


def template_names() -> list[str]:
    """The templates shipped with the watchdog (``python3``, ``python3-http``)."""
    return sorted(p.name for p in _TEMPLATES.iterdir() if (p / "handler.py").is_file())


def template_path(lang: str) -> Path:
    """The folder of template `lang` (``handler.py`` + ``requirements.txt``) to copy.

    Raises ValueError for an unknown template.
    """
    names = template_names()
    if lang not in names:
        raise ValueError(f"unknown template {lang!r}; expected one of {', '.join(names)}")
    return _TEMPLATES / lang
