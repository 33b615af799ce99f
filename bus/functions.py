"""A live, read-only view of the function store (``faas_functions``) for services on the bus.

Queue workers read retry and concurrency annotations from it; connectors build their topic map
from it. It follows a KV watch, so a deploy, update or delete is seen within milliseconds, and a
periodic full resync (``resync_s``) repairs anything a broken watch missed. It never exits on a
bus error: it logs, waits and watches again. Values are the JSON the provider stores: the
OpenFaaS FunctionDeployment fields (``service``, ``annotations``, ``labels``, ...) at top level.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any, Self

import structlog
from nats.js.kv import KeyValue

from faasbus.bus import names
from faasbus.bus.connection import Bus
from faasbus.bus.kvread import current_entries
from faasbus.bus.kvwatch import follow_bucket
from faasbus.bus.tasks import cancel_and_wait

__all__ = ["FunctionCatalog"]

log = structlog.get_logger(__name__)

Listener = Callable[[], None]


class FunctionCatalog:
    """``(namespace, function) -> deployment dict``, kept current; an async context manager."""

    def __init__(self, bus: Bus, *, resync_s: float = 30.0) -> None:
        self._bus = bus
        self._resync_s = resync_s
        self._functions: dict[tuple[str, str], dict[str, Any]] = {}
        self._listeners: list[Listener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._synced = asyncio.Event()

    def get(self, namespace: str, function: str) -> dict[str, Any] | None:
        return self._functions.get((namespace, function))

    def items(self) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        return list(self._functions.items())

    def annotations(self, namespace: str, function: str) -> dict[str, str]:
        found = self.get(namespace, function) or {}
        raw = found.get("annotations") or {}
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` (synchronously) after every change."""
        self._listeners.append(listener)

    async def __aenter__(self) -> Self:
        kv = await self._bus.js.key_value(names.FUNCTIONS_BUCKET)
        self._tasks = [
            asyncio.create_task(
                follow_bucket(kv, self._apply, self._synced, label=names.FUNCTIONS_BUCKET),
                name="function-catalog-watch",
            ),
            asyncio.create_task(self._resync(kv), name="function-catalog-resync"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout=5.0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("function_catalog_listener_failed")

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        ident = names.split_function_key(key)
        if operation in ("DEL", "PURGE") or not value:
            if self._functions.pop(ident, None) is not None:
                self._notify()
            return
        try:
            parsed = json.loads(value)
        except ValueError:
            log.warning("function_record_invalid", key=key)
            return
        if isinstance(parsed, dict) and self._functions.get(ident) != parsed:
            self._functions[ident] = parsed
            self._notify()

    async def _resync(self, kv: KeyValue) -> None:
        while True:
            await asyncio.sleep(self._resync_s)
            try:
                entries = await current_entries(self._bus.js, kv, names.FUNCTIONS_BUCKET)
            except Exception as exc:  # the bus is away: try again next round
                log.warning("function_resync_failed", error=str(exc))
                continue
            for entry in entries:
                self._apply(entry.key, entry.value, entry.operation)
            live = {names.split_function_key(entry.key) for entry in entries}
            for gone in [ident for ident in self._functions if ident not in live]:
                self._functions.pop(gone, None)
                self._notify()
