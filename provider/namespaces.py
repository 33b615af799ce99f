"""Namespaces: the default one, those created through the API, and those functions live in.

Decision: created namespaces (with their labels and annotations) are kept in
``<state>/namespaces.json``, not in ``faas_functions`` — every reader of that bucket (connectors,
gateways) takes each key for a function. The list the API shows is the union of
``openfaas-fn``, the created ones and every namespace that holds a function, so deploying into a
new namespace works without creating it first (as faasd does). Deleting the default namespace or
one that still holds functions is refused.
"""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from faasbus.bus import names
from faasbus.provider.errors import Conflict, NotFound
from faasbus.provider.secrets import write_private
from faasbus.provider.types import WireError, valid_name

__all__ = ["NamespaceStore", "namespace_body"]


def namespace_body(raw: Any, name: str | None = None) -> dict[str, Any]:
    """``{"name","labels","annotations"}`` from a request body (name from the path wins)."""
    if not isinstance(raw, dict):
        raise WireError("body", "must be a JSON object")
    chosen = name or raw.get("name")
    if not isinstance(chosen, str) or not chosen:
        raise WireError("name", "is required")
    valid_name(chosen, "name")
    body: dict[str, Any] = {"name": chosen}
    for key in ("labels", "annotations"):
        value = raw.get(key) or {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise WireError(key, "must be an object of strings")
        body[key] = dict(value)
    return body


class NamespaceStore:
    """Created namespaces in a JSON file; safe for one provider process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, Any]]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_text())
            if isinstance(data, dict):
                return {k: v for k, v in data.items() if isinstance(v, dict)}
        return {}

    def _save(self, data: dict[str, dict[str, Any]]) -> None:
        write_private(self.path, json.dumps(data, indent=2, sort_keys=True).encode())

    def created(self) -> dict[str, dict[str, Any]]:
        return self._load()

    def names(self, with_functions: set[str]) -> list[str]:
        return sorted({names.DEFAULT_NAMESPACE} | set(self._load()) | with_functions)

    def get(self, name: str, with_functions: set[str]) -> dict[str, Any]:
        stored = self._load().get(name)
        if stored is not None:
            return {"name": name, "labels": stored.get("labels", {}),
                    "annotations": stored.get("annotations", {})}  # fmt: skip
        if name == names.DEFAULT_NAMESPACE or name in with_functions:
            return {"name": name, "labels": {}, "annotations": {}}
        raise NotFound(f"namespace {name} not found")

    def create(self, body: dict[str, Any], with_functions: set[str]) -> None:
        name = body["name"]
        with self._lock:
            data = self._load()
            if name in data or name == names.DEFAULT_NAMESPACE or name in with_functions:
                raise Conflict(f"namespace {name} already exists")
            data[name] = {"labels": body["labels"], "annotations": body["annotations"]}
            self._save(data)

    def update(self, body: dict[str, Any], with_functions: set[str]) -> None:
        name = body["name"]
        with self._lock:
            data = self._load()
            if name not in data and name != names.DEFAULT_NAMESPACE and name not in with_functions:
                raise NotFound(f"namespace {name} not found")
            data[name] = {"labels": body["labels"], "annotations": body["annotations"]}
            self._save(data)

    def delete(self, name: str, with_functions: set[str]) -> None:
        with self._lock:
            data = self._load()
            if name == names.DEFAULT_NAMESPACE:
                raise Conflict(f"namespace {name} is the default namespace and cannot be deleted")
            if name in with_functions:
                raise Conflict(f"namespace {name} still has functions; delete them first")
            if name not in data:
                raise NotFound(f"namespace {name} not found")
            del data[name]
            self._save(data)
