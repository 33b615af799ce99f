"""The function store: desired state in the KV bucket ``faas_functions``.

Key ``<namespace>.<function>``; value the JSON of :meth:`FunctionDeployment.to_wire` (OpenFaaS field
names at the top level, so connectors read ``annotations`` straight from it) plus ``"replicas"``
(the desired count) and ``"createdAt"`` (RFC 3339, set at the first deploy and kept by updates).

Writes are read-modify-write with the KV revision as a guard (``kv.update(..., last=revision)``),
retried on a conflict, so a scale and an update racing each other do not lose either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Self

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from faasbus.bus import BusUnavailable, current_entries, names
from faasbus.provider.types import FunctionDeployment

__all__ = ["FunctionStore", "StoredFunction", "rfc3339_now"]

_CONFLICT_RETRIES = 20
# JetStream's "wrong last sequence" error codes (JSStreamWrongLastSequenceErrF, ...ConstantErr).
_WRONG_LAST_SEQUENCE = (10071, 10164)


def rfc3339_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class StoredFunction:
    """One ``faas_functions`` value: the deployment, its desired replicas and creation time."""

    deployment: FunctionDeployment
    replicas: int
    created_at: str
    revision: int = 0

    @property
    def key(self) -> str:
        return names.function_key(self.deployment.namespace, self.deployment.service)

    def to_json(self) -> bytes:
        body: dict[str, Any] = self.deployment.to_wire()
        body["replicas"] = self.replicas
        body["createdAt"] = self.created_at
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, revision: int = 0) -> Self:
        raw = json.loads(data)
        deployment = FunctionDeployment.from_wire(raw)
        replicas = raw.get("replicas", 1)
        return cls(
            deployment=deployment,
            replicas=replicas if isinstance(replicas, int) and replicas >= 0 else 1,
            created_at=str(raw.get("createdAt") or ""),
            revision=revision,
        )


Mutation = Callable[[StoredFunction | None], StoredFunction | None]


class FunctionStore:
    """Reads and guarded writes of desired state; bus errors become :class:`BusUnavailable`."""

    def __init__(self, js: JetStreamContext, kv: KeyValue) -> None:
        self.js = js
        self.kv = kv

    async def get(self, namespace: str, function: str) -> StoredFunction | None:
        key = names.function_key(namespace, function)
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return None
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusUnavailable(f"reading {key} from the function store: {exc}") from exc
        if not entry.value:
            return None
        return StoredFunction.from_json(entry.value, entry.revision or 0)

    async def list(self, namespace: str | None = None) -> list[StoredFunction]:
        """Every stored function (of one namespace when given), sorted by name."""
        found: list[StoredFunction] = []
        prefix = f"{namespace}." if namespace is not None else ""
        try:
            entries = await current_entries(self.js, self.kv, names.FUNCTIONS_BUCKET, prefix=prefix)
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusUnavailable(f"listing the function store: {exc}") from exc
        for entry in entries:
            try:
                found.append(StoredFunction.from_json(entry.value or b"", entry.revision or 0))
            except (ValueError, TypeError):
                continue
        return sorted(found, key=lambda s: (s.deployment.namespace, s.deployment.service))

    async def mutate(
        self, namespace: str, function: str, change: Mutation
    ) -> StoredFunction | None:
        """Apply ``change`` to the current value (None: absent) and store its result.

        ``change`` returning None deletes the key. Conflicting concurrent writes are retried
        with a fresh read. Errors raised by ``change`` propagate unchanged.
        """
        key = names.function_key(namespace, function)
        for _ in range(_CONFLICT_RETRIES):
            current = await self.get(namespace, function)
            wanted = change(current)
            try:
                if wanted is None:
                    if current is not None:
                        await self.kv.delete(key, last=current.revision)
                    return None
                if current is None:
                    revision = await self.kv.create(key, wanted.to_json())
                else:
                    revision = await self.kv.update(key, wanted.to_json(), last=current.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except nats.js.errors.APIError as exc:
                if exc.err_code in _WRONG_LAST_SEQUENCE:  # a guarded delete lost the race
                    continue
                raise BusUnavailable(f"writing {key} to the function store: {exc}") from exc
            except (nats.errors.Error, TimeoutError) as exc:
                raise BusUnavailable(f"writing {key} to the function store: {exc}") from exc
            return replace(wanted, revision=revision)
        raise BusUnavailable(f"{key} kept changing under concurrent writes; try again")
