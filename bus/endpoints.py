"""Where a function's replicas are: the endpoint records, the watched table, and scale-up.

The provider writes one record per replica into ``faas_endpoints`` (key
``<namespace>.<function>.<instance>``) and refreshes it every few seconds. Gateways and queue
workers keep an in-memory :class:`EndpointTable` fed by a watch on that bucket, so the hot path
never asks the provider. A record counts only while it is fresh: KV expiry does not notify
watchers, so the table also ages entries out itself after ``ttl_s`` without a refresh, which is what
makes replicas of a dead provider disappear.

When a function has no ready replica, :meth:`EndpointTable.acquire` asks the provider for one with
a bus request on :data:`SCALE_UP_SUBJECT` (one request shared by all callers waiting on that
function) and waits for a ready record to arrive through the watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Self

import nats.errors
import nats.js.errors
import structlog
from nats.js.kv import KeyValue

from faasbus.bus import names
from faasbus.bus.connection import Bus
from faasbus.bus.errors import BusError, BusUnavailable
from faasbus.bus.kvwatch import follow_bucket
from faasbus.bus.tasks import cancel_and_wait

__all__ = [
    "SCALE_UP_QUEUE",
    "SCALE_UP_SUBJECT",
    "Endpoint",
    "EndpointTable",
    "NoReplicaError",
    "ScaleUpReply",
    "ScaleUpRequest",
    "delete_endpoint",
    "put_endpoint",
]

log = structlog.get_logger(__name__)

SCALE_UP_SUBJECT = "faas.control.scale-up"
SCALE_UP_QUEUE = "faasbus-provider"


class NoReplicaError(BusError):
    """No ready replica of ``namespace.function`` within the wait; ``reason`` says why."""

    def __init__(
        self, namespace: str, function: str, reason: str, *, not_found: bool = False
    ) -> None:
        super().__init__(f"no ready replica for {function}.{namespace}: {reason}")
        self.namespace = namespace
        self.function = function
        self.reason = reason
        self.not_found = not_found


@dataclass(frozen=True)
class Endpoint:
    """One replica as the provider announces it (JSON in ``faas_endpoints``)."""

    namespace: str
    function: str
    instance: str
    url: str
    ready: bool
    pid: int = 0
    provider: str = ""
    started_at: float = 0.0

    @property
    def key(self) -> str:
        return names.endpoint_key(self.namespace, self.function, self.instance)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Self:
        """Parse a record, ignoring fields this version does not know (open world)."""
        raw: dict[str, Any] = json.loads(data)
        known = {name: raw[name] for name in cls.__dataclass_fields__ if name in raw}
        return cls(**known)


@dataclass(frozen=True)
class ScaleUpRequest:
    namespace: str
    function: str

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()


@dataclass(frozen=True)
class ScaleUpReply:
    """``ok`` false means the function cannot be started; ``found`` false: no such function."""

    ok: bool
    error: str = ""
    replicas: int = 0
    found: bool = True

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Self:
        raw: dict[str, Any] = json.loads(data)
        return cls(
            ok=bool(raw.get("ok")),
            error=str(raw.get("error", "")),
            replicas=int(raw.get("replicas", 0)),
            found=bool(raw.get("found", True)),
        )


async def put_endpoint(kv: KeyValue, endpoint: Endpoint) -> None:
    await kv.put(endpoint.key, endpoint.to_json())


async def delete_endpoint(kv: KeyValue, endpoint: Endpoint) -> None:
    with contextlib.suppress(nats.js.errors.KeyNotFoundError):
        await kv.delete(endpoint.key)


@dataclass
class _Slot:
    endpoint: Endpoint
    seen_at: float
    inflight: int = 0


@dataclass
class _Function:
    slots: dict[str, _Slot] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    scale_up: asyncio.Task[ScaleUpReply] | None = None


class EndpointTable:
    """Ready replicas per function, kept current by a watch on ``faas_endpoints``.

    Use as an async context manager (starts and stops the watch). ``acquire`` hands out the
    replica with the fewest requests in flight and counts the request until the context exits.
    """

    def __init__(self, bus: Bus, *, ttl_s: float | None = None) -> None:
        self._bus = bus
        self._ttl_s = ttl_s if ttl_s is not None else bus.settings.endpoint_ttl_s
        self._functions: dict[tuple[str, str], _Function] = {}
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    async def __aenter__(self) -> Self:
        kv = await self._bus.js.key_value(names.ENDPOINTS_BUCKET)
        self._task = asyncio.create_task(
            follow_bucket(kv, self._apply, self._synced, label=names.ENDPOINTS_BUCKET),
            name="endpoint-table-watch",
        )
        with contextlib.suppress(TimeoutError):
            # Initial values arrive quickly; do not block start-up on an empty bucket.
            await asyncio.wait_for(self._synced.wait(), timeout=5.0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])
        for entry in self._functions.values():
            if entry.scale_up is not None and not entry.scale_up.done():
                entry.scale_up.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.scale_up

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        namespace, function = names.split_function_key(key)
        instance = key.split(".", 2)[-1]
        entry = self._functions.setdefault((namespace, function), _Function())
        if operation in ("DEL", "PURGE") or not value:
            entry.slots.pop(instance, None)
        else:
            try:
                endpoint = Endpoint.from_json(value)
            except (ValueError, TypeError) as exc:
                log.warning("endpoint_record_invalid", key=key, error=str(exc))
                return
            slot = entry.slots.get(instance)
            if slot is None or slot.endpoint.url != endpoint.url:
                entry.slots[instance] = _Slot(endpoint, time.monotonic())
            else:
                slot.endpoint = endpoint
                slot.seen_at = time.monotonic()
        entry.changed.set()
        entry.changed = asyncio.Event()

    def ready(self, namespace: str, function: str) -> list[Endpoint]:
        """Fresh, ready replicas of a function."""
        return [slot.endpoint for slot in self._ready_slots(namespace, function)]

    def _ready_slots(self, namespace: str, function: str) -> list[_Slot]:
        entry = self._functions.get((namespace, function))
        if entry is None:
            return []
        oldest = time.monotonic() - self._ttl_s
        return [s for s in entry.slots.values() if s.endpoint.ready and s.seen_at >= oldest]

    def snapshot(self) -> dict[tuple[str, str], list[Endpoint]]:
        return {key: self.ready(*key) for key in self._functions}

    @contextlib.contextmanager
    def _lease(self, slot: _Slot) -> Iterator[Endpoint]:
        slot.inflight += 1
        try:
            yield slot.endpoint
        finally:
            slot.inflight -= 1

    @contextlib.asynccontextmanager
    async def acquire(
        self, namespace: str, function: str, *, wait_s: float, scale_from_zero: bool = True
    ) -> AsyncIterator[Endpoint]:
        """The least-busy ready replica; scales from zero and waits up to ``wait_s``."""
        slots = self._ready_slots(namespace, function)
        if not slots:
            slots = await self._wait_ready(namespace, function, wait_s, scale_from_zero)
        slot = min(slots, key=lambda s: s.inflight)
        with self._lease(slot) as endpoint:
            yield endpoint

    async def _wait_ready(
        self, namespace: str, function: str, wait_s: float, scale_from_zero: bool
    ) -> list[_Slot]:
        deadline = time.monotonic() + wait_s
        entry = self._functions.setdefault((namespace, function), _Function())
        if scale_from_zero and (entry.scale_up is None or entry.scale_up.done()):
            # One scale-up request however many callers wait for this function.
            entry.scale_up = asyncio.create_task(
                self._request_scale_up(namespace, function, wait_s),
                name=f"scale-up-{namespace}.{function}",
            )
        while True:
            slots = self._ready_slots(namespace, function)
            if slots:
                return slots
            scale_up = entry.scale_up
            if scale_up is not None and scale_up.done() and not scale_up.cancelled():
                exc = scale_up.exception()
                if exc is not None:
                    raise NoReplicaError(namespace, function, str(exc)) from exc
                reply = scale_up.result()
                if not reply.ok:
                    raise NoReplicaError(
                        namespace, function, reply.error, not_found=not reply.found
                    )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoReplicaError(namespace, function, f"none became ready in {wait_s:g}s")
            waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(entry.changed.wait())]
            if scale_up is not None and not scale_up.done():
                waiters.append(scale_up)
            # Wake at least every 0.5 s: freshness is time-based, not event-based.
            _done, pending = await asyncio.wait(
                waiters, timeout=min(remaining, 0.5), return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                if waiter is not scale_up:
                    waiter.cancel()

    async def _request_scale_up(self, namespace: str, function: str, wait_s: float) -> ScaleUpReply:
        request = ScaleUpRequest(namespace, function)
        try:
            msg = await self._bus.nc.request(
                SCALE_UP_SUBJECT, request.to_json(), timeout=max(wait_s, 0.1)
            )
        except nats.errors.NoRespondersError as exc:
            raise BusUnavailable("no provider answers scale-up requests") from exc
        except (nats.errors.TimeoutError, TimeoutError) as exc:
            raise BusUnavailable("the provider did not answer the scale-up request") from exc
        return ScaleUpReply.from_json(msg.data)
