"""Secrets: files with mode 0600 under the state directory, copied into each function's directory.

The store keeps one file per secret at ``<state>/secrets/<namespace>/<name>`` (directories 0700,
files 0600, written to a temporary file and renamed so a reader never sees half a value). A
function that names secrets gets its own directory holding copies of just those — the directory
the replica is told about in ``FAASBUS_SECRETS_DIR`` (and ``secret_mount_path``), like
``/var/openfaas/secrets`` in a container. Updating a secret rewrites the copies of every function
that uses it, so running replicas read the new value on their next read.

Values never leave through the API and are never logged: this module logs names only.
``<state>/secrets/`` also holds the gateway's ``basic-auth-user``/``basic-auth-password`` files,
so those two names cannot be namespaces here.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import structlog

from faasbus.provider.errors import Conflict, InvalidRequest, NotFound
from faasbus.provider.types import SecretSpec

__all__ = ["SecretStore", "write_private"]

log = structlog.get_logger(__name__)

_RESERVED = frozenset({"basic-auth-user", "basic-auth-password"})


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically (temporary file + rename)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        temporary.chmod(0o600)
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


class SecretStore:
    """Create, update, delete and list secrets; materialise them for functions."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, namespace: str) -> Path:
        if namespace in _RESERVED:
            raise InvalidRequest(f"namespace {namespace!r} is reserved")
        return self.root / namespace

    def path(self, namespace: str, name: str) -> Path:
        return self._dir(namespace) / name

    def exists(self, namespace: str, name: str) -> bool:
        return self.path(namespace, name).is_file()

    def names(self, namespace: str) -> list[str]:
        directory = self._dir(namespace)
        if not directory.is_dir():
            return []
        return sorted(
            p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")
        )

    def create(self, spec: SecretSpec) -> None:
        if self.exists(spec.namespace, spec.name):
            raise Conflict(f"secret {spec.name} already exists in {spec.namespace}")
        write_private(self.path(spec.namespace, spec.name), spec.data)
        log.info("secret_created", secret=spec.name, namespace=spec.namespace)

    def update(self, spec: SecretSpec) -> None:
        if not self.exists(spec.namespace, spec.name):
            raise NotFound(f"secret {spec.name} not found in {spec.namespace}")
        write_private(self.path(spec.namespace, spec.name), spec.data)
        log.info("secret_updated", secret=spec.name, namespace=spec.namespace)

    def delete(self, namespace: str, name: str) -> None:
        try:
            self.path(namespace, name).unlink()
        except FileNotFoundError:
            raise NotFound(f"secret {name} not found in {namespace}") from None
        log.info("secret_deleted", secret=name, namespace=namespace)

    def missing(self, namespace: str, wanted: list[str]) -> list[str]:
        return [name for name in wanted if not self.exists(namespace, name)]

    def materialize(self, namespace: str, wanted: list[str], target: Path) -> list[str]:
        """Copy ``wanted`` into ``target`` (0700) and drop anything else; return missing names."""
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        target.chmod(0o700)
        missing: list[str] = []
        for name in wanted:
            try:
                data = self.path(namespace, name).read_bytes()
            except OSError:
                missing.append(name)
                continue
            destination = target / name
            with contextlib.suppress(OSError):
                if destination.read_bytes() == data:
                    continue
            write_private(destination, data)
        for stale in target.iterdir():
            if stale.name not in wanted and stale.is_file():
                with contextlib.suppress(OSError):
                    stale.unlink()
        return missing
