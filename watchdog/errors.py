"""The watchdog's error taxonomy, so callers can tell a bad setting from a broken handler.

```
WatchdogError                  base of everything the watchdog raises on purpose
├── ConfigError(variable, value)   an environment variable is missing or malformed; exit 2
└── HandlerLoadError(path)         the python-mode handler module cannot be imported; exit 1
```

Errors a *function* makes at request time (non-zero exit, timeout, exception) are not raised
through here: each mode turns them into the HTTP status the OpenFaaS contract names.
"""

from __future__ import annotations


class WatchdogError(Exception):
    """Base class for errors raised by faasbus.watchdog itself."""


class ConfigError(WatchdogError, ValueError):
    """An environment variable is missing or has a value the watchdog cannot use."""

    def __init__(self, variable: str, value: str | None, reason: str) -> None:
        self.variable = variable
        self.value = value
        self.reason = reason
        shown = "" if value is None else f"={value!r}"
        super().__init__(f"invalid setting {variable}{shown}: {reason}")


class HandlerLoadError(WatchdogError):
    """The python-mode handler could not be imported or has no usable function."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot load handler {path}: {reason}")
