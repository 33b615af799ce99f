"""``faasbus up``: the whole stack on one machine, supervised, stopped cleanly (ARCHITECTURE.md 6).

Order of a run:

1. Lock ``<state>/run/up.lock`` (one ``up`` per state directory) and kill what a previous run
   killed with SIGKILL may have left (processes carrying its token, see :mod:`procscan`).
2. Create the basic-auth credentials on first start (:mod:`credentials`).
3. Pick ports: the gateway on ``--port`` (8080; it must be free), the provider on a free loopback
   port, nats-server on ``--nats-port`` when given, else 4222 when free, else a free port (printed).
   With ``--nats-url`` no server is started.
4. Start nats-server (store under ``<state>/nats``; restarted if it dies), then each service of
   :func:`faasbus.cli.services.service_specs` in order, waiting for the provider and the gateway to
   answer ``/healthz``.
5. Print the gateway URL and where the credentials are, then deploy the stack file (``-f``, else
   ``examples/stack.yml`` in the current folder or beside this checkout) with ``faasbus deploy`` as
   a one-shot child, so a slow build can be stopped like everything else.
6. On SIGINT/SIGTERM: stop children in reverse order (SIGTERM, wait, SIGKILL of the group), then
   nats-server, then kill any process still carrying this run's token. A second signal kills at
   once.

State (nats store, bundles, secrets) lives in the state directory and survives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import structlog

from faasbus.bus import NatsServer, NatsServerOptions, free_port
from faasbus.cli.credentials import Credentials, ensure_credentials
from faasbus.cli.errors import LauncherError
from faasbus.cli.procscan import TOKEN_VARIABLE, find_processes, kill_processes
from faasbus.cli.services import ServiceContext, runnable_specs
from faasbus.cli.settings import DEFAULT_GATEWAY, default_state_dir
from faasbus.cli.supervisor import Child, ChildSpec, Printer

__all__ = ["UpSettings", "default_stack_file", "run_up"]

DEFAULT_NATS_PORT = 4222
_NATS_POLL_S = 0.5


@dataclass(frozen=True)
class UpSettings:
    """Options of ``faasbus up``.

    state_dir        where everything persistent lives
    port             gateway port (0: a free one)
    nats_url         an external NATS; no embedded server when set
    nats_port        embedded server client port; None: 4222 if free, else a free one
    stack_file       deployed after start; None: no deploy
    stop_timeout_s   grace between SIGTERM and SIGKILL per child (30 s: the provider stops its
                     replicas first, and each drains for its healthcheck_interval)
    start_timeout_s  how long provider and gateway may take to answer /healthz
    """

    state_dir: Path
    port: int = 8080
    nats_url: str | None = None
    nats_port: int | None = None
    stack_file: Path | None = None
    stop_timeout_s: float = 30.0
    start_timeout_s: float = 60.0


def default_stack_file(cwd: Path | None = None) -> Path | None:
    """``examples/stack.yml`` of the current folder, else of the checkout this code runs from."""
    here = (cwd or Path.cwd()) / "examples" / "stack.yml"
    if here.is_file():
        return here
    checkout = Path(__file__).resolve().parent.parent / "examples" / "stack.yml"
    return checkout if checkout.is_file() else None


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _state_lock(state_dir: Path) -> Iterator[None]:
    run_dir = state_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "up.lock"
    handle: IO[str] = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LauncherError(
                f"`faasbus up` is already running on {state_dir} (pid {holder}); stop it first "
                "or use another --state-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


class _NatsChild:
    """The embedded nats-server, restarted (same ports, same store) if it dies."""

    def __init__(self, server: NatsServer, printer: Printer) -> None:
        self.server = server
        self.printer = printer
        self.name = "nats-server"
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)
        self.printer.say(f"nats-server started (pid {self.server.pid}) at {self.server.url}")
        self._task = asyncio.create_task(self._watch(), name="nats-server-watch")

    async def _watch(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), _NATS_POLL_S)
            if self._stopping.is_set() or self.server.running():
                continue
            self.printer.say(f"nats-server exited; restarting in {backoff:.1f}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            if self._stopping.is_set():
                return
            try:
                await asyncio.to_thread(self.server.start)
            except Exception as exc:
                self.printer.say(f"nats-server restart failed: {exc}")
                backoff = min(backoff * 2, 30.0)
            else:
                self.printer.say(f"nats-server started (pid {self.server.pid})")
                backoff = 0.5

    def kill_now(self) -> None:
        self._stopping.set()
        self.server.kill()

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.server.stop)


class _Launcher:
    def __init__(self, settings: UpSettings, printer: Printer) -> None:
        self.settings = settings
        self.printer = printer
        self.token = secrets.token_hex(12)
        self.stop_event = asyncio.Event()
        self.nats: _NatsChild | None = None
        self.children: list[Child] = []

    # ---------------------------------------------------------------- signals
    def _on_signal(self, signum: int) -> None:
        if self.stop_event.is_set():
            self.printer.say("second signal: killing everything now")
            for child in self.children:
                child.kill_now()
            if self.nats is not None:
                self.nats.kill_now()
            return
        self.printer.say(f"{signal.Signals(signum).name} received: stopping")
        self.stop_event.set()

    async def _until_stopped(self, awaitable: asyncio.Task[None]) -> bool:
        """Await ``awaitable`` unless a stop signal comes first; True when it completed."""
        stopper = asyncio.create_task(self.stop_event.wait(), name="up-stop-wait")
        try:
            waited: set[asyncio.Task[Any]] = {awaitable, stopper}
            done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
        if awaitable in done:
            awaitable.result()
            return True
        awaitable.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await awaitable
        return False

    # ---------------------------------------------------------------- start
    def _previous_leftovers(self) -> None:
        token_file = self.settings.state_dir / "run" / "up.token"
        old: str | None = None
        with contextlib.suppress(OSError):
            old = token_file.read_text(encoding="utf-8").strip()
        # The lock is ours, so no other `up` runs here: anything still marked is a leftover.
        killed = kill_processes(find_processes(old, self.settings.state_dir))
        if killed:
            self.printer.say(
                f"killed {len(killed)} leftover process(es) of an earlier run: {killed}"
            )
        token_file.write_text(self.token, encoding="utf-8")

    def _choose_ports(self) -> tuple[int, int, int | None]:
        settings = self.settings
        gateway_port = settings.port or free_port()
        if not _port_free(gateway_port):
            raise LauncherError(
                f"port {gateway_port} is taken: stop what uses it or pick another with --port"
            )
        provider_port = free_port()
        if settings.nats_url:
            return gateway_port, provider_port, None
        if settings.nats_port:
            if not _port_free(settings.nats_port):
                raise LauncherError(
                    f"--nats-port {settings.nats_port} is taken: pick another or leave it out"
                )
            return gateway_port, provider_port, settings.nats_port
        if _port_free(DEFAULT_NATS_PORT):
            return gateway_port, provider_port, DEFAULT_NATS_PORT
        nats_port = free_port()
        self.printer.say(f"port {DEFAULT_NATS_PORT} is taken; nats-server uses {nats_port}")
        return gateway_port, provider_port, nats_port

    async def _start_nats(self, nats_port: int) -> str:
        store = self.settings.state_dir / "nats"
        server = NatsServer(NatsServerOptions(store_dir=store, port=nats_port))
        # nats-server inherits our environment: the token marks it like every other child.
        os.environ[TOKEN_VARIABLE] = self.token
        self.nats = _NatsChild(server, self.printer)
        try:
            await self.nats.start()
        except Exception as exc:
            raise LauncherError(f"nats-server did not start: {exc}") from exc
        return server.url

    def _child(self, spec: ChildSpec) -> Child:
        child = Child(spec, self.printer, stop_timeout_s=self.settings.stop_timeout_s)
        self.children.append(child)
        child.start()
        return child

    def _banner(
        self, gateway_url: str, nats_url: str, credentials: Credentials, provider_port: int
    ) -> None:
        state = self.settings.state_dir
        lines = [
            f"gateway ready at {gateway_url}",
            f"  gateway      {gateway_url}  (REST API, /function/NAME, /ui/)",
            f"  user         {credentials.user}  ({credentials.user_path})",
            f"  password     in {credentials.password_path}",
            f"  nats         {nats_url}",
            f"  provider     http://127.0.0.1:{provider_port}/ (internal)",
            f"  state        {state}",
        ]
        needs = []
        if gateway_url != DEFAULT_GATEWAY:
            needs.append(f"OPENFAAS_URL={gateway_url}")
        if state != default_state_dir():
            needs.append(f"FAASBUS_STATE_DIR={state}")
        prefix = f"export {' '.join(needs)}; " if needs else ""
        lines.append(f"  try          {prefix}faasbus list   (credentials come from the state dir)")
        for line in lines:
            self.printer.say(line)

    def _deploy_child(
        self, gateway_url: str, credentials: Credentials, env: dict[str, str]
    ) -> Child | None:
        stack_file = self.settings.stack_file
        if stack_file is None:
            return None
        deploy_env = dict(env)
        deploy_env.update(
            {
                "OPENFAAS_URL": gateway_url,
                "FAASBUS_STATE_DIR": str(self.settings.state_dir),
                "FAASBUS_USER": credentials.user,
                "FAASBUS_PASSWORD": credentials.password_path.read_text("utf-8").strip(),
                TOKEN_VARIABLE: self.token,
            }
        )
        argv = (sys.executable, "-m", "faasbus.cli", "deploy", "-f", str(stack_file))
        self.printer.say(f"deploying {stack_file}")
        return self._child(ChildSpec("deploy", argv, deploy_env, restart=False))

    async def _start(self) -> None:
        settings = self.settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self._previous_leftovers()
        credentials = ensure_credentials(settings.state_dir)
        if credentials.created:
            self.printer.say(f"created credentials in {credentials.user_path.parent}")
        gateway_port, provider_port, nats_port = self._choose_ports()
        nats_url = settings.nats_url or await self._start_nats(nats_port or DEFAULT_NATS_PORT)
        base_env = dict(os.environ)
        base_env[TOKEN_VARIABLE] = self.token
        ctx = ServiceContext(
            state_dir=settings.state_dir,
            nats_url=nats_url,
            gateway_port=gateway_port,
            provider_port=provider_port,
            token=self.token,
            base_env=base_env,
        )
        specs, missing = runnable_specs(ctx)
        if missing:
            names = ", ".join(f"{spec.name} ({spec.module})" for spec in missing)
            raise LauncherError(f"cannot start: no runnable module for {names}")
        for spec in specs:
            child = self._child(ChildSpec(spec.name, spec.argv(), spec.env, spec.health_url()))
            if spec.port is not None:
                waiting = asyncio.create_task(
                    child.wait_ready(settings.start_timeout_s), name=f"wait-{spec.name}"
                )
                if not await self._until_stopped(waiting):
                    return
        gateway_url = f"http://127.0.0.1:{gateway_port}"
        self._banner(gateway_url, nats_url, credentials, provider_port)
        deploy = self._deploy_child(gateway_url, credentials, base_env)
        if deploy is not None:
            deploy.on_exit = lambda code: self.printer.say(
                "deploy finished"
                if code == 0
                else f"deploy failed (exit {code}); the stack is up: fix the stack file and run "
                f"`faasbus deploy -f {settings.stack_file}`"
            )

    # ---------------------------------------------------------------- stop
    async def _stop(self) -> None:
        for child in reversed(self.children):
            await child.stop()
        if self.nats is not None:
            await self.nats.stop()
        leftovers = kill_processes(find_processes(self.token, self.settings.state_dir))
        if leftovers:
            self.printer.say(
                f"killed {len(leftovers)} process(es) that outlived their parent: {leftovers}"
            )
        with contextlib.suppress(OSError):
            (self.settings.state_dir / "run" / "up.token").unlink()
        self.printer.say("stopped")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            try:
                await self._start()
                await self.stop_event.wait()
            finally:
                await self._stop()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _route_nats_output(printer: Printer) -> None:
    """Print nats-server's own lines like every child's (``nats-server | ...``), not as log events.

    :class:`NatsServer` pumps the server's output into structlog (``nats_server_output``); this
    processor, put first in the chain :func:`configure_logging` set up, hands those lines to the
    printer and drops the event. Other events keep their normal rendering on stderr.
    """

    def processor(
        _logger: object, _method: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        if event.get("event") == "nats_server_output":
            printer.line("nats-server", str(event.get("line", "")))
            raise structlog.DropEvent
        return event

    processors = list(structlog.get_config()["processors"])
    structlog.configure(processors=[processor, *processors])


def run_up(settings: UpSettings, printer: Printer | None = None) -> None:
    """The process main of ``faasbus up``: owns the signals, returns after a clean stop.

    Call :func:`faasbus.bus.configure_logging` first; the launcher adds its routing on top.
    """
    chosen = printer or Printer()
    _route_nats_output(chosen)
    with _state_lock(settings.state_dir):
        asyncio.run(_Launcher(settings, chosen).run())
