"""Typed settings read once from an injected mapping (ARCHITECTURE.md section 7).

Every component builds one frozen dataclass from ``Env(os.environ)`` at start. The readers here
turn strings into typed values and fail with :class:`SettingsError` naming the variable, so a bad
value stops a process at start instead of surfacing as an odd behaviour later.

Durations follow the OpenFaaS convention: a bare number is seconds (``10``), otherwise Go-style
units (``10s``, ``1m30s``, ``250ms``, ``1h``). Booleans accept ``true/false/1/0/yes/no/on/off``.
The watchdog has its own small reader because it imports nothing from faasbus.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Env", "SettingsError", "parse_bool", "parse_duration"]

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingsError(ValueError):
    """A setting has a value that cannot be used; ``name`` is the variable."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"{name}={value!r} is not valid: expected {expected}")
        self.name = name
        self.value = value
        self.expected = expected


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``10``, ``10s``, ``1m30s``, ``250ms``); ValueError when malformed."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty duration")
    try:
        seconds = float(stripped)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError("negative duration")
        return seconds
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(stripped):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(stripped) or position == 0:
        raise ValueError(f"not a duration: {text!r}")
    return total


def parse_bool(text: str) -> bool:
    """``true``/``false`` and the usual spellings; ValueError otherwise."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True)
class Env:
    """Typed access to an environment-like mapping; each reader names the variable on error."""

    values: Mapping[str, str]

    def raw(self, *names: str) -> tuple[str, str] | None:
        """The first of ``names`` that is set and not blank, with its value."""
        for name in names:
            value = self.values.get(name)
            if value is not None and value.strip() != "":
                return name, value
        return None

    def text(self, name: str, default: str, *aliases: str) -> str:
        found = self.raw(name, *aliases)
        return default if found is None else found[1].strip()

    def optional_text(self, name: str, *aliases: str) -> str | None:
        found = self.raw(name, *aliases)
        return None if found is None else found[1].strip()

    def flag(self, name: str, default: bool, *aliases: str) -> bool:
        found = self.raw(name, *aliases)
        if found is None:
            return default
        try:
            return parse_bool(found[1])
        except ValueError:
            raise SettingsError(found[0], found[1], "true or false") from None

    def integer(self, name: str, default: int, *aliases: str, minimum: int | None = None) -> int:
        found = self.raw(name, *aliases)
        if found is None:
            return default
        try:
            value = int(found[1].strip())
        except ValueError:
            raise SettingsError(found[0], found[1], "an integer") from None
        if minimum is not None and value < minimum:
            raise SettingsError(found[0], found[1], f"an integer >= {minimum}")
        return value

    def duration(self, name: str, default_s: float, *aliases: str) -> float:
        """Seconds; accepts ``10``, ``10s``, ``1m30s``, ``500ms``."""
        found = self.raw(name, *aliases)
        if found is None:
            return default_s
        try:
            return parse_duration(found[1])
        except ValueError:
            raise SettingsError(
                found[0], found[1], "a duration such as 10, 10s, 1m30s or 500ms"
            ) from None

    def choice(self, name: str, default: str, choices: frozenset[str], *aliases: str) -> str:
        found = self.raw(name, *aliases)
        if found is None:
            return default
        value = found[1].strip().lower()
        if value not in choices:
            raise SettingsError(found[0], found[1], "one of " + ", ".join(sorted(choices)))
        return value

    def csv(self, name: str, *aliases: str) -> tuple[str, ...]:
        """Comma-separated, trimmed, empty items dropped."""
        found = self.raw(name, *aliases)
        if found is None:
            return ()
        return tuple(item.strip() for item in found[1].split(",") if item.strip())
