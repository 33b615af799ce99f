"""``static`` mode (of-watchdog): serve the files under ``static_path``, no process at all.

``GET``/``HEAD`` only; a folder is answered with its ``index.html``; a path that resolves outside
``static_path`` (``..``, a symlink out) is a ``404`` like a missing file.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from faasbus.watchdog.base import RuntimeBase
from faasbus.watchdog.config import WatchdogConfig

__all__ = ["StaticRuntime"]


class StaticRuntime(RuntimeBase):
    """Serves a folder."""

    def __init__(self, config: WatchdogConfig) -> None:
        self._root = config.static_path.resolve()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in {"GET", "HEAD"}:
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        target = self._resolve(request.path)
        if target is None:
            raise web.HTTPNotFound
        return web.FileResponse(target)

    def _resolve(self, path: str) -> Path | None:
        candidate = (self._root / path.lstrip("/")).resolve()
        if candidate != self._root and self._root not in candidate.parents:
            return None
        if candidate.is_dir():
            candidate /= "index.html"
        return candidate if candidate.is_file() else None
