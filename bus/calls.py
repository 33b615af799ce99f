"""Call records: what happened to call X (REFERENCE.md section 3, "beyond").

One JSON record per call id in the KV bucket ``faas_calls`` (TTL ``FAASBUS_CALLS_TTL``). The
gateway writes ``queued`` when it accepts a call; queue workers move it through ``running``,
``retrying`` and a final state, and record the callback's outcome. Updates use the KV revision
(compare-and-set) so two writers never silently overwrite each other; the last writer retries on
a conflict with the freshest record.

The function's response body is kept in the object store ``faas_payloads`` under
``results/<call id>``, so a redelivered message after a crash can still send the callback without
running the function again, and ``GET /system/calls/{id}/result`` can show it (up to
``max_result_bytes``).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, Self

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from faasbus.bus import names

__all__ = [
    "INLINE_RESULT_BYTES",
    "CallRecord",
    "CallState",
    "CallStore",
    "CallbackState",
    "is_valid_call_id",
]

# Results up to this size travel inside the call record (one KV write instead of an object store
# put of several messages); larger ones go to faas_payloads.
INLINE_RESULT_BYTES = 16 * 1024

_CALL_ID = re.compile(r"^[A-Za-z0-9_=-]{1,128}$")


def is_valid_call_id(call_id: str) -> bool:
    """Call ids become KV keys and object names: letters, digits, ``-``, ``_``, ``=``."""
    return _CALL_ID.fullmatch(call_id) is not None


class CallState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({CallState.SUCCEEDED, CallState.FAILED, CallState.DEAD, CallState.CANCELLED})


class CallbackState(StrEnum):
    NONE = "none"  # no X-Callback-Url
    PENDING = "pending"
    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD = "dead"  # never accepted; the result is in FAAS_DLQ
    REFUSED = "refused"  # the URL was not allowed


@dataclass(frozen=True)
class CallRecord:
    """The state of one call; times are Unix seconds."""

    call_id: str
    function: str
    namespace: str
    state: CallState = CallState.QUEUED
    source: str = "gateway"
    topic: str = ""
    attempts: int = 0
    max_attempts: int = 0
    status_code: int = 0
    error: str = ""
    queued_at: float = field(default_factory=time.time)
    started_at: float = 0.0
    finished_at: float = 0.0
    duration_s: float = 0.0
    callback_url: str = ""
    callback_state: CallbackState = CallbackState.NONE
    callback_attempts: int = 0
    callback_status: int = 0
    result_headers: dict[str, str] = field(default_factory=dict)
    result_size: int = 0
    cancel_requested: bool = False
    stream_seq: int = 0  # FAAS_INVOKE sequence, so a queued call can be cancelled by deleting it
    result_b64: str = ""  # a small result kept in the record itself (see CallStore.put_result)

    def to_json(self) -> bytes:
        # The instance dict holds the fields in declaration order, as ``asdict`` would give them,
        # without its deep copy (a third of a worker's record-writing time).
        return json.dumps(vars(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Self:
        raw: dict[str, Any] = json.loads(data)
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        known["state"] = CallState(known.get("state", "queued"))
        known["callback_state"] = CallbackState(known.get("callback_state", "none"))
        return cls(**known)

    def to_wire(self) -> dict[str, Any]:
        """The JSON ``GET /system/calls/{id}`` answers."""
        body = asdict(self)
        body.pop("result_b64")
        body["state"] = self.state.value
        body["callback_state"] = self.callback_state.value
        return body


class CallStore:
    """Read and write call records and stored results."""

    def __init__(self, js: JetStreamContext, kv: KeyValue) -> None:
        self._js = js
        self._kv = kv
        self._objects: ObjectStore | None = None

    async def _object_store(self) -> ObjectStore:
        if self._objects is None:
            self._objects = await self._js.object_store(names.PAYLOADS_BUCKET)
        return self._objects

    @classmethod
    async def open(cls, js: JetStreamContext) -> Self:
        return cls(js, await js.key_value(names.CALLS_BUCKET))

    async def get(self, call_id: str) -> CallRecord | None:
        entry = await self.entry(call_id)
        return None if entry is None else entry[0]

    async def entry(self, call_id: str) -> tuple[CallRecord, int] | None:
        try:
            entry = await self._kv.get(call_id)
        except nats.js.errors.NotFoundError:  # never written, or deleted
            return None
        if entry.value is None or entry.revision is None:
            return None
        return CallRecord.from_json(entry.value), entry.revision

    async def put(self, record: CallRecord) -> None:
        await self._kv.put(record.call_id, record.to_json())

    async def create(self, record: CallRecord) -> None:
        """Write a new record; ``KeyWrongLastSequenceError`` if the call id already has one."""
        await self._kv.create(record.call_id, record.to_json())

    async def update(
        self, call_id: str, change: Callable[[CallRecord], CallRecord], *, create: CallRecord
    ) -> CallRecord:
        """Apply ``change`` atomically (compare-and-set on the revision), creating if absent."""
        return (await self.update_known(call_id, change, create=create))[0]

    async def update_known(
        self,
        call_id: str,
        change: Callable[[CallRecord], CallRecord],
        *,
        create: CallRecord | Callable[[], CallRecord],
        known: tuple[CallRecord, int] | None = None,
    ) -> tuple[CallRecord, int]:
        """Like :meth:`update`, starting from ``known`` (the record and revision this writer saw
        last) to save a read; returns the new record and revision. ``create`` may be a function
        making the record to start from, called only when there is none."""
        current = known
        for _ in range(10):
            if current is None:
                current = await self.entry(call_id)
            if current is None:
                record = change(create() if callable(create) else create)
                try:
                    revision = await self._kv.create(call_id, record.to_json())
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
                return record, revision
            record = change(current[0])
            try:
                revision = await self._kv.update(call_id, record.to_json(), last=current[1])
            except nats.js.errors.KeyWrongLastSequenceError:
                current = None  # someone else wrote: read the fresh record and apply again
                continue
            return record, revision
        raise RuntimeError(f"call record {call_id} kept changing under us")

    @staticmethod
    def inline(body: bytes) -> str:
        """The record's ``result_b64`` for ``body``, or "" when it must go to the object store."""
        return base64.b64encode(body).decode() if len(body) <= INLINE_RESULT_BYTES else ""

    async def put_result(self, call_id: str, body: bytes) -> None:
        store = await self._object_store()
        await store.put(f"results/{call_id}", body)

    async def get_result(self, call_id: str, record: CallRecord | None = None) -> bytes | None:
        """The stored result: from the record when it is small, else from the object store."""
        if record is None:
            record = await self.get(call_id)
        if record is not None and record.result_b64:
            return base64.b64decode(record.result_b64)
        if record is not None and record.state.final and record.result_size == 0:
            return b""
        store = await self._object_store()
        try:
            result = await store.get(f"results/{call_id}")
        except nats.js.errors.ObjectNotFoundError:
            return None
        return result.data or b""


def mark(record: CallRecord, **changes: Any) -> CallRecord:
    """A copy of ``record`` with ``changes`` (a readable name for ``dataclasses.replace``)."""
    return replace(record, **changes)
