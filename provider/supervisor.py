"""The reconcile engine: desired state in ``faas_functions`` → running replicas.

The :class:`Supervisor` owns one :class:`~faasbus.provider.runtime.FunctionRuntime` per function
(which holds the replicas and the reconcile rule) and feeds them from a watch on
``faas_functions`` (changes arrive in milliseconds), a full resync every ``resync_interval_s`` (a
missed watch event is repaired), and direct calls from the API handlers right after their writes
(so a deploy starts replicas without waiting for its own watch event). Each applied value carries
its KV revision; an older one never overwrites a newer one, and a deleted function leaves a
tombstone so a late event cannot bring it back. It also answers scale-up requests on
``SCALE_UP_SUBJECT`` (queue group ``SCALE_UP_QUEUE``) for gateways and workers that found a
function at zero.

One provider reconciles a bus: two providers watching the same ``faas_functions`` would each start
the wanted number of replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.kv import KeyValue

from faasbus.bus import SCALE_UP_QUEUE, SCALE_UP_SUBJECT, ScaleUpReply, cancel_and_wait, names
from faasbus.provider.bundles import load_bundle
from faasbus.provider.errors import ImageNotBuilt, SecretMissing
from faasbus.provider.launch import ReplicaSpec, replica_spec
from faasbus.provider.policy import ScaleBounds
from faasbus.provider.replica import ReplicaContext
from faasbus.provider.runtime import FunctionRuntime
from faasbus.provider.secrets import SecretStore
from faasbus.provider.store import FunctionStore, StoredFunction

__all__ = ["Supervisor"]

log = structlog.get_logger(__name__)


def _parse_scale_up(data: bytes) -> tuple[str, str]:
    request = json.loads(data)
    namespace = str(request.get("namespace") or names.DEFAULT_NAMESPACE)
    function = str(request["function"])
    if not (names.is_dns1123_label(namespace) and names.is_dns1123_label(function)):
        raise ValueError("invalid function or namespace name")
    return namespace, function


class Supervisor:
    """All function runtimes of this provider, fed by the store watch, resync and the API."""

    def __init__(
        self,
        context: ReplicaContext,
        store: FunctionStore,
        secrets: SecretStore,
        environ: Mapping[str, str],
    ) -> None:
        self.context = context
        self.store = store
        self.secrets = secrets
        self.environ = dict(environ)
        self.settings = context.settings
        self.runtimes: dict[tuple[str, str], FunctionRuntime] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None
        self._closing = False
        # Revision at which each forgotten function was deleted: a late, older watch event must
        # not bring a deleted function back to life.
        self._tombstones: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------------ start and stop

    async def start(self) -> None:
        orphans = await self.context.pids.sweep(self.settings.stop_grace_s)
        for record in orphans:
            with contextlib.suppress(Exception):
                await self.context.endpoints.delete(
                    names.endpoint_key(record.namespace, record.function, record.instance)
                )
        for stored in await self.store.list():
            self.apply(stored)
        self._tasks = [
            asyncio.create_task(self._watch(), name="provider-store-watch"),
            asyncio.create_task(self._resync(), name="provider-resync"),
        ]
        self._subscription = await self.context.nc.subscribe(
            SCALE_UP_SUBJECT, queue=SCALE_UP_QUEUE, cb=self._on_scale_up
        )

    async def close(self) -> None:
        self._closing = True
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None
        await cancel_and_wait(self._tasks)
        self._tasks = []
        runtimes = list(self.runtimes.values())
        await asyncio.gather(*(runtime.close() for runtime in runtimes), return_exceptions=True)
        self.runtimes.clear()

    # ------------------------------------------------------------------ desired state

    def function_dir(self, namespace: str, function: str) -> Path:
        return self.settings.state_dir / "functions" / namespace / function

    def spec_for(self, stored: StoredFunction) -> ReplicaSpec:
        deployment = stored.deployment
        bundle = None
        if not deployment.env_process:
            bundle = load_bundle(self.settings.state_dir, deployment.image)
            if bundle is None:
                raise ImageNotBuilt(deployment.image)
        directory = self.function_dir(deployment.namespace, deployment.service)
        missing = self.secrets.materialize(
            deployment.namespace, deployment.secrets, directory / "secrets"
        )
        if missing:
            raise SecretMissing(missing[0])
        return replica_spec(deployment, bundle, directory, self.environ)

    def runtime(self, namespace: str, function: str) -> FunctionRuntime | None:
        return self.runtimes.get((namespace, function))

    def apply(
        self,
        stored: StoredFunction | None,
        *,
        namespace: str = "",
        function: str = "",
        revision: int = 0,
    ) -> FunctionRuntime | None:
        """Make ``stored`` (None: deleted) the desired state of its function."""
        if stored is not None:
            namespace, function = stored.deployment.namespace, stored.deployment.service
            revision = stored.revision
        if self._closing:
            return None
        key = (namespace, function)
        runtime = self.runtimes.get(key)
        if runtime is None:
            if stored is None:
                return None
            if revision and revision <= self._tombstones.get(key, 0):
                return None
            self._tombstones.pop(key, None)
            runtime = FunctionRuntime(self, namespace, function)
            self.runtimes[key] = runtime
        runtime.apply(stored, revision)
        return runtime

    def forget(self, runtime: FunctionRuntime) -> None:
        """Called by a runtime whose function is deleted and whose replicas are all stopped."""
        key = (runtime.namespace, runtime.function)
        if self.runtimes.get(key) is runtime:
            del self.runtimes[key]
            self._tombstones[key] = runtime.revision
            shutil.rmtree(runtime.directory, ignore_errors=True)

    def secret_changed(self, namespace: str, name: str) -> None:
        """Rewrite the copies of a secret in every function of ``namespace`` that uses it."""
        for runtime in self.runtimes.values():
            stored = runtime.stored
            if runtime.namespace != namespace or stored is None:
                continue
            if name in stored.deployment.secrets:
                self.secrets.materialize(
                    namespace, stored.deployment.secrets, runtime.directory / "secrets"
                )
                runtime.invalidate_spec()

    # ------------------------------------------------------------------ feeds

    async def _watch(self) -> None:
        while True:
            try:
                kv: KeyValue = self.store.kv
                watcher = await kv.watchall()
                try:
                    async for entry in watcher:
                        if entry is None:
                            continue
                        self._apply_entry(entry.key, entry.value, entry.operation,
                                          entry.revision or 0)  # fmt: skip
                finally:
                    with contextlib.suppress(Exception):
                        await watcher.stop()  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("store_watch_restart", error=str(exc))
                await asyncio.sleep(0.5)

    def _apply_entry(self, key: str, value: bytes | None, operation: str | None, rev: int) -> None:
        namespace, function = names.split_function_key(key)
        if not names.is_dns1123_label(namespace) or not names.is_dns1123_label(function):
            return
        if operation in ("DEL", "PURGE") or not value:
            self.apply(None, namespace=namespace, function=function, revision=rev)
            return
        try:
            stored = StoredFunction.from_json(value, rev)
        except (ValueError, TypeError) as exc:
            log.warning("stored_function_invalid", key=key, error=str(exc))
            return
        self.apply(stored)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval_s)
            try:
                status = await self.store.kv.status()
                snapshot_seq = status.stream_info.state.last_seq
                present = {}
                for stored in await self.store.list():
                    present[(stored.deployment.namespace, stored.deployment.service)] = stored
                    self.apply(stored)
                for key, runtime in list(self.runtimes.items()):
                    if key not in present and runtime.stored is not None:
                        self.apply(None, namespace=key[0], function=key[1],
                                   revision=snapshot_seq)  # fmt: skip
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("resync_failed", error=str(exc))

    # ------------------------------------------------------------------ scale from zero

    async def scale_up(self, namespace: str, function: str) -> ScaleUpReply:
        """Make sure a function has replicas starting; answer once they are underway."""

        def wake(current: StoredFunction | None) -> StoredFunction | None:
            if current is None or current.replicas > 0:
                return current
            bounds = ScaleBounds.from_labels(current.deployment.labels)
            return replace(current, replicas=bounds.wake)

        stored = await self.store.mutate(namespace, function, wake)
        if stored is None:
            return ScaleUpReply(ok=False, found=False, error=f"function {function} not found")
        runtime = self.apply(stored)
        if runtime is not None:
            runtime.reconcile_now()
            if runtime.error:
                return ScaleUpReply(ok=False, error=runtime.error, replicas=stored.replicas)
        return ScaleUpReply(ok=True, replicas=stored.replicas)

    async def _on_scale_up(self, msg: Msg) -> None:
        try:
            namespace, function = _parse_scale_up(msg.data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reply = ScaleUpReply(ok=False, found=False, error=f"bad scale-up request: {exc}")
        else:
            try:
                reply = await self.scale_up(namespace, function)
            except Exception as exc:
                log.warning("scale_up_failed", function=function, namespace=namespace,
                            error=str(exc))  # fmt: skip
                reply = ScaleUpReply(ok=False, error=str(exc))
        if msg.reply:
            with contextlib.suppress(nats.errors.Error):
                await msg.respond(reply.to_json())
