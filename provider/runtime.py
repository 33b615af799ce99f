"""One function's replicas and the loop that reconciles them with its desired state.

A :class:`FunctionRuntime` reconciles whenever something changed (a store update, a replica
became ready or crashed) and at least every second. Its rule, on each pass:

- compute the replica spec from the stored deployment (bundle, secrets copied into the function's
  directory); if it cannot be computed (bundle gone, secret deleted) keep what runs, start nothing
  and report the reason as the function's error;
- start replicas of the current spec until there are ``replicas`` of them; stop the excess (those
  not ready first, then the newest);
- replicas of an older spec (an update) are stopped as soon as replicas of the new spec are ready
  to take their place (a rolling update: never fewer ready replicas than wanted while it can be
  helped, never stale code once the new code serves).

What it needs from its owner (the supervisor) is the small :class:`RuntimeOwner` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets as random_tokens
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from faasbus.provider.errors import ProviderError
from faasbus.provider.launch import ReplicaSpec
from faasbus.provider.replica import Replica, ReplicaContext
from faasbus.provider.store import StoredFunction

__all__ = ["FunctionRuntime", "RuntimeOwner", "RuntimeStatus"]

log = structlog.get_logger(__name__)

_INSTANCE_ALPHABET = string.ascii_lowercase + string.digits
_RECONCILE_EVERY_S = 1.0


class RuntimeOwner(Protocol):
    """What a runtime asks of the supervisor that owns it."""

    context: ReplicaContext

    def function_dir(self, namespace: str, function: str) -> Path: ...

    def spec_for(self, stored: StoredFunction) -> ReplicaSpec: ...

    def forget(self, runtime: FunctionRuntime) -> None: ...


@dataclass(frozen=True)
class RuntimeStatus:
    """What the provider knows about a function's replicas right now."""

    available: int
    running: int
    restarts: int
    last_error: str
    cpu_millicores: float | None
    memory_bytes: int | None
    states: dict[str, str]


class FunctionRuntime:
    """The replicas of one function and the loop that reconciles them."""

    def __init__(self, supervisor: RuntimeOwner, namespace: str, function: str) -> None:
        self.supervisor = supervisor
        self.namespace = namespace
        self.function = function
        self.stored: StoredFunction | None = None
        self.revision = 0
        self.replicas: list[Replica] = []
        self.error = ""
        self._retiring: set[asyncio.Task[None]] = set()
        self._spec: ReplicaSpec | None = None
        self._spec_revision = -1
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._next = 0
        self._task = asyncio.create_task(self._loop(), name=f"runtime-{namespace}.{function}")

    @property
    def directory(self) -> Path:
        return self.supervisor.function_dir(self.namespace, self.function)

    def apply(self, stored: StoredFunction | None, revision: int) -> bool:
        """Take a new desired state unless an equal or newer one was applied already."""
        if revision and revision < self.revision:
            return False
        self.revision = max(revision, self.revision)
        self.stored = stored
        self.notify()
        return True

    def notify(self) -> None:
        self._wake.set()
        self._changed.set()
        self._changed = asyncio.Event()

    def invalidate_spec(self) -> None:
        self._spec_revision = -1
        self.notify()

    def ready_replicas(self) -> list[Replica]:
        return [r for r in self.replicas if r.ready and not r.stopping]

    def pick(self) -> Replica | None:
        """A ready replica, round robin."""
        ready = self.ready_replicas()
        if not ready:
            return None
        self._next = (self._next + 1) % len(ready)
        return ready[self._next]

    async def wait_ready(self, timeout_s: float) -> Replica | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            replica = self.pick()
            if replica is not None or self.error:
                return replica
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))

    def status(self) -> RuntimeStatus:
        cpu_total = 0.0
        memory_total = 0
        sampled = False
        for replica in self.replicas:
            usage = replica.usage()
            if usage is not None:
                sampled = True
                cpu_total += usage[0]
                memory_total += usage[1]
        # A replica not ready says why first; else the last failure of any (a past crash loop).
        failing = [r for r in self.replicas if r.last_error and not r.ready]
        recovered = [r for r in self.replicas if r.last_error]
        last_error = self.error or next((r.last_error for r in failing + recovered), "")
        return RuntimeStatus(
            available=len(self.ready_replicas()),
            running=len(self.replicas),
            restarts=sum(r.restarts for r in self.replicas),
            last_error=last_error,
            cpu_millicores=round(cpu_total, 3) if sampled else None,
            memory_bytes=memory_total if sampled else None,
            states={r.instance: r.state for r in self.replicas},
        )

    # ------------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=_RECONCILE_EVERY_S)
            self._wake.clear()
            try:
                self._reconcile()
            except Exception:
                log.exception("reconcile_failed", function=self.function, namespace=self.namespace)
            if self.stored is None and not self.replicas and not self._retiring:
                self.supervisor.forget(self)
                return

    def _current_spec(self) -> ReplicaSpec | None:
        stored = self.stored
        if stored is None:
            return None
        if self._spec is not None and self._spec_revision == self.revision and not self.error:
            return self._spec
        try:
            spec = self.supervisor.spec_for(stored)
        except ProviderError as exc:
            if str(exc) != self.error:
                log.warning("function_cannot_start", function=self.function,
                            namespace=self.namespace, error=str(exc))  # fmt: skip
            self.error = str(exc)
            return None
        self.error = ""
        self._spec = spec
        self._spec_revision = self.revision
        return spec

    def reconcile_now(self) -> None:
        """Reconcile at once (the loop would within a turn); used where latency matters."""
        self._reconcile()

    def _reconcile(self) -> None:
        stored = self.stored
        desired = stored.replicas if stored is not None else 0
        spec = self._current_spec()
        if spec is None:
            current: list[Replica] = []
            stale = list(self.replicas)
        else:
            current = [r for r in self.replicas if r.spec_hash == spec.spec_hash]
            stale = [r for r in self.replicas if r.spec_hash != spec.spec_hash]
            while len(current) < desired:
                replica = Replica(self.supervisor.context, spec, self._new_instance(), self.notify)
                self.replicas.append(replica)
                current.append(replica)
                replica.start()
        if len(current) > desired:
            # Stop those not ready first, then the newest.
            ranked = sorted(enumerate(current), key=lambda item: (item[1].ready, -item[0]))
            for _, replica in ranked[: len(current) - desired]:
                self._retire(replica)
        if stored is None or desired == 0:
            keep_stale = 0
        elif spec is None:
            keep_stale = len(stale)  # nothing new can start: keep what serves
        else:
            ready_new = sum(1 for r in current if r.ready)
            keep_stale = max(0, desired - ready_new)
        if len(stale) > keep_stale:
            order = sorted(stale, key=lambda r: r.ready)
            for replica in order[: len(stale) - keep_stale]:
                self._retire(replica)

    def _new_instance(self) -> str:
        taken = {r.instance for r in self.replicas}
        while True:
            suffix = "".join(random_tokens.choice(_INSTANCE_ALPHABET) for _ in range(6))
            instance = f"{self.function[:56]}-{suffix}"
            if instance not in taken:
                return instance

    def _retire(self, replica: Replica) -> None:
        self.replicas.remove(replica)
        task = asyncio.create_task(replica.stop(), name=f"retire-{replica.instance}")
        self._retiring.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._retiring.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.warning("replica_stop_failed", instance=replica.instance,
                            error=str(finished.exception()))  # fmt: skip
            self.notify()

        task.add_done_callback(done)
        self.notify()

    async def close(self) -> None:
        """Stop every replica (gracefully, concurrently) and the loop."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        for replica in list(self.replicas):
            self._retire(replica)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
