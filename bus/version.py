"""The installed faasbus version, for ``X-Served-By``, ``User-Agent`` and ``/system/info``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["VERSION"]

try:
    VERSION = version("faasbus")
except PackageNotFoundError:  # running from a tree that was never installed
    VERSION = "0.0.0"
