"""One replica: a supervised watchdog process, from start to ready, crash and restart, to stop.

Lifecycle of a :class:`Replica` (its ``state``):

    starting ──announce line + /_/health 200──► ready ◄──probe ok── unhealthy
        │                                        │  └──2 failed probes──►─┘
        └──exit / no announce in time──► restarting / crash-loop ──backoff──► starting
    stop(): endpoint withdrawn, SIGTERM, SIGKILL to the process group after the grace period

- The port is learned from the watchdog's one stdout line ``faasbus-watchdog listening on
  HOST:PORT`` (it is started with ``port=0``), then ``/_/health`` is polled until it answers 200.
- While ready the replica is in ``faas_endpoints`` (key ``<ns>.<fn>.<instance>``), refreshed
  every ``endpoint_refresh_s`` (a third of the endpoint TTL) and deleted before it is stopped, so
  gateways stop routing to it before it drains.
- An exit it did not ask for is a crash: the replica is started again after an exponential
  backoff (``backoff_initial_s`` doubling up to ``backoff_max_s``, reset once a run lasted
  ``stable_after_s``). Each crash is logged, written to the function's log stream and counted in
  ``restarts``/``last_error``, which FunctionStatus shows.
- The instance name stays the same across restarts (like a Kubernetes pod's container restarts),
  so its logs read as one story.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from subprocess import DEVNULL, PIPE

import aiohttp
import structlog
from nats.aio.client import Client as NatsClient
from nats.js.kv import KeyValue

from faasbus.bus import Endpoint, delete_endpoint, put_endpoint
from faasbus.provider.launch import ReplicaSpec
from faasbus.provider.limits import CgroupLimiter, Spawner
from faasbus.provider.logsink import LogSink, pump_lines
from faasbus.provider.pidrecords import PidRecords
from faasbus.provider.procfs import ProcessSample, sample_tree
from faasbus.provider.settings import ProviderSettings

__all__ = ["Replica", "ReplicaContext"]

log = structlog.get_logger(__name__)

_ANNOUNCE = re.compile(rb"listening on (\S+):(\d+)\s*$")
_PROBE_TIMEOUT_S = 2.0
_FAILED_PROBES_UNREADY = 2
_PUMP_DRAIN_S = 2.0


@dataclass
class ReplicaContext:
    """What every replica of this provider shares."""

    settings: ProviderSettings
    nc: NatsClient
    endpoints: KeyValue
    http: aiohttp.ClientSession
    cgroups: CgroupLimiter
    spawner: Spawner
    pids: PidRecords
    provider_id: str


class _StartFailure(Exception):
    """The process started but never became ready in time."""


class Replica:
    """A supervised watchdog process; ``start()`` once, ``await stop()`` once."""

    def __init__(
        self,
        context: ReplicaContext,
        spec: ReplicaSpec,
        instance: str,
        on_change: Callable[[], None],
    ) -> None:
        self.context = context
        self.spec = spec
        self.instance = instance
        self.state = "starting"
        self.ready = False
        self.url = ""
        self.pid = 0
        self.restarts = 0
        self.last_error = ""
        self._on_change = on_change
        self._started_wall = 0.0
        self._process: asyncio.subprocess.Process | None = None
        self._published: Endpoint | None = None
        self._stop_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sink = LogSink(context.nc, spec.namespace, spec.function, instance)
        self._last_sample: tuple[float, ProcessSample] | None = None
        self._was_ready = False
        self._log = log.bind(function=spec.function, namespace=spec.namespace, instance=instance)

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    @property
    def spec_hash(self) -> str:
        return self.spec.spec_hash

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"replica-{self.instance}")

    async def stop(self) -> None:
        """Withdraw the endpoint, SIGTERM, wait the grace period, SIGKILL; idempotent."""
        self._stop_event.set()
        self._set_ready(ready=False)
        await self._withdraw()
        await self._terminate()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=self.context.settings.stop_grace_s + 5)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            except Exception as exc:
                self._log.warning("replica_supervisor_failed", error=str(exc))
        self.state = "stopped"

    # ------------------------------------------------------------------ supervision

    async def _supervise(self) -> None:
        settings = self.context.settings
        failures = 0
        while not self._stop_event.is_set():
            began = time.monotonic()
            try:
                reason = await self._run_once()
            except _StartFailure as exc:
                reason = str(exc)
            except Exception as exc:
                self._log.exception("replica_run_failed")
                reason = f"failed: {exc}"
            if self._stop_event.is_set():
                break
            failures = 1 if time.monotonic() - began >= settings.stable_after_s else failures + 1
            delay = min(settings.backoff_initial_s * 2 ** (failures - 1), settings.backoff_max_s)
            self.restarts += 1
            self.last_error = reason
            self.state = "crash-loop" if failures > 1 else "restarting"
            self._log.warning("replica_exited", reason=reason, restart_in_s=round(delay, 2),
                              restarts=self.restarts, crash_loop=failures > 1)  # fmt: skip
            await self._sink.provider_line(
                f"replica {self.instance} {reason}; restarting in {delay:.1f}s "
                f"(restart {self.restarts})"
            )
            self._on_change()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), timeout=delay)
        self.state = "stopped"

    async def _run_once(self) -> str:
        """Run one process to its end; return why it ended."""
        settings = self.context.settings
        spec = self.spec
        self.state = "starting"
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        cgroup = self.context.cgroups.create(self.instance, spec.limits)
        spawner = self.context.spawner
        try:
            process = await asyncio.create_subprocess_exec(
                *spawner.argv(spec.argv),
                stdin=DEVNULL,
                stdout=PIPE,
                stderr=PIPE,
                env=spec.env_for(self.instance),
                cwd=spec.cwd,
                start_new_session=True,
                preexec_fn=spawner.preexec(),
            )
        except OSError as exc:
            CgroupLimiter.remove(cgroup)
            raise _StartFailure(f"could not be started: {exc}") from exc
        try:
            spawner.confine(process.pid, spec.limits, cgroup)
        except OSError as exc:
            self._kill_group(process.pid)
            await process.wait()
            CgroupLimiter.remove(cgroup)
            raise _StartFailure(f"could not apply its limits: {exc}") from exc
        self._process = process
        self.pid = process.pid
        self._started_wall = time.time()
        self._last_sample = None
        self.context.pids.add(self.instance, spec.namespace, spec.function, process.pid,
                              str(cgroup or ""))  # fmt: skip
        self._log.info("replica_started", pid=process.pid, kind=spec.kind)
        announced: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_stdout(line: bytes) -> None:
            match = _ANNOUNCE.search(line)
            if match is not None and not announced.done():
                host = match.group(1).decode()
                host = "127.0.0.1" if host in ("0.0.0.0", "", "::", "[::]") else host
                announced.set_result(f"http://{host}:{int(match.group(2))}")

        assert process.stdout is not None  # noqa: S101 - PIPE was asked for
        assert process.stderr is not None  # noqa: S101
        pumps = [
            asyncio.create_task(pump_lines(process.stdout, self._sink, on_stdout),
                                name=f"replica-stdout-{self.instance}"),
            asyncio.create_task(pump_lines(process.stderr, self._sink),
                                name=f"replica-stderr-{self.instance}"),
        ]  # fmt: skip
        exited = asyncio.create_task(process.wait(), name=f"replica-wait-{self.instance}")
        try:
            if self._stop_event.is_set():
                await self._terminate()
            await self._become_ready(announced, exited, settings.start_timeout_s)
            await self._watch(exited)
            code = await exited
            return f"exited with code {code}" + ("" if self._was_ready else " before it was ready")
        finally:
            self._set_ready(ready=False)
            await self._withdraw()
            if process.returncode is None:
                self._kill_group(process.pid)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(exited), timeout=5)
            self._kill_group(process.pid)  # strays the watchdog left in its session
            if not exited.done():
                exited.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await exited
            _done, still = await asyncio.wait(pumps, timeout=_PUMP_DRAIN_S)
            for pump in still:
                pump.cancel()
            for pump in pumps:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump
            if not announced.done():
                announced.cancel()
            self.context.pids.remove(self.instance)
            CgroupLimiter.remove(cgroup)
            self._process = None

    async def _become_ready(
        self, announced: asyncio.Future[str], exited: asyncio.Task[int], timeout_s: float
    ) -> None:
        self._was_ready = False
        deadline = time.monotonic() + timeout_s
        waiting: set[asyncio.Future[str] | asyncio.Future[int]] = {announced, exited}
        done, _ = await asyncio.wait(
            waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if exited in done or self._stop_event.is_set():
            return
        if announced not in done:
            await self._kill_for_start_timeout(timeout_s, "did not announce its port")
            return
        self.url = announced.result()
        delay = 0.005
        while not exited.done() and not self._stop_event.is_set():
            if await self._probe():
                self._was_ready = True
                self.state = "ready"
                self._set_ready(ready=True)
                await self._publish()
                self._log.info("replica_ready", url=self.url, pid=self.pid)
                return
            if time.monotonic() >= deadline:
                await self._kill_for_start_timeout(timeout_s, "did not pass /_/health")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _kill_for_start_timeout(self, timeout_s: float, what: str) -> None:
        message = f"{what} within {timeout_s:g}s"
        await self._sink.provider_line(f"replica {self.instance} {message}; stopping it")
        if self._process is not None:
            self._kill_group(self._process.pid)
        raise _StartFailure(message)

    async def _watch(self, exited: asyncio.Task[int]) -> None:
        settings = self.context.settings
        interval = min(settings.health_interval_s, settings.endpoint_refresh_s)
        last_publish = time.monotonic()
        failed = 0
        while not exited.done():
            await asyncio.wait({exited}, timeout=interval)
            if exited.done() or self._stop_event.is_set():
                continue
            if await self._probe():
                failed = 0
                if not self.ready:
                    self.state = "ready"
                    self._set_ready(ready=True)
                    await self._publish()
                    last_publish = time.monotonic()
            else:
                failed += 1
                if failed >= _FAILED_PROBES_UNREADY and self.ready:
                    self.state = "unhealthy"
                    self._set_ready(ready=False)
                    self._log.warning("replica_unhealthy", failed_probes=failed)
                    await self._publish()
                    last_publish = time.monotonic()
            if time.monotonic() - last_publish >= settings.endpoint_refresh_s:
                await self._publish()
                last_publish = time.monotonic()

    async def _probe(self) -> bool:
        try:
            async with self.context.http.get(
                f"{self.url}/_/health", timeout=aiohttp.ClientTimeout(total=_PROBE_TIMEOUT_S)
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    # ------------------------------------------------------------------ endpoint and signals

    def _set_ready(self, *, ready: bool) -> None:
        if self.ready != ready:
            self.ready = ready
            self._on_change()

    async def _publish(self) -> None:
        if self._stop_event.is_set():
            return
        endpoint = Endpoint(
            namespace=self.spec.namespace,
            function=self.spec.function,
            instance=self.instance,
            url=self.url,
            ready=self.ready,
            pid=self.pid,
            provider=self.context.provider_id,
            started_at=self._started_wall,
        )
        try:
            await put_endpoint(self.context.endpoints, endpoint)
        except Exception as exc:
            self._log.warning("endpoint_publish_failed", error=str(exc))
            return
        self._published = endpoint
        if self._stop_event.is_set():  # stop() ran while we were publishing: take it back
            await self._withdraw()

    async def _withdraw(self) -> None:
        endpoint, self._published = self._published, None
        if endpoint is None:
            return
        try:
            await delete_endpoint(self.context.endpoints, endpoint)
        except Exception as exc:
            self._log.warning("endpoint_delete_failed", error=str(exc))

    async def _terminate(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=self.context.settings.stop_grace_s)
        except TimeoutError:
            self._log.warning("replica_kill", pid=process.pid,
                              grace_s=self.context.settings.stop_grace_s)  # fmt: skip
            self._kill_group(process.pid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), timeout=5)

    @staticmethod
    def _kill_group(pid: int) -> None:
        # The replica leads its own session (start_new_session), so its group id is its pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ figures

    def usage(self) -> tuple[float, int] | None:
        """(CPU in millicores since the last sample, resident bytes) of the process tree."""
        process = self._process
        if process is None or process.returncode is not None:
            return None
        sample = sample_tree(process.pid)
        now = time.monotonic()
        previous = self._last_sample
        self._last_sample = (now, sample)
        if previous is None:
            elapsed = max(time.time() - self._started_wall, 1e-3)
            cpu = sample.cpu_seconds / elapsed
        else:
            elapsed = max(now - previous[0], 1e-3)
            cpu = max(sample.cpu_seconds - previous[1].cpu_seconds, 0.0) / elapsed
        return cpu * 1000, sample.rss_bytes
