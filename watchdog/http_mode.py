"""``http`` mode (of-watchdog): keep ``fprocess`` warm and reverse-proxy every call to it.

The function starts once, in its own session; its stdout and stderr are pumped into the log for
its whole life. The watchdog is ready only when ``upstream_url`` accepts TCP connections, and
requests that arrive earlier wait for that rather than failing (cold starts answered with 500 are
complaint 12 in REFERENCE.md section 9). If the function dies, the replica is broken: the
watchdog stops and exits non-zero so its supervisor restarts it.

Calls go through one pooled ``aiohttp.ClientSession``. Status, headers and body pass through
unchanged (no decompression, hop-by-hop headers dropped). The watchdog's own failures carry
``X-OpenFaaS-Internal: watchdog``: the call's time limit -> ``504``, anything else -> ``500``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from faasbus.watchdog.base import (
    RuntimeBase,
    call_timeout_s,
    format_duration,
    internal_error,
    read_body,
)
from faasbus.watchdog.config import WatchdogConfig
from faasbus.watchdog.errors import WatchdogError
from faasbus.watchdog.logs import get_logger
from faasbus.watchdog.process import LINE_LIMIT_BYTES, die_with_parent, pump_lines, stop_process

__all__ = ["HttpRuntime"]

_log = get_logger(__name__)
# RFC 9110 section 7.6.1 hop-by-hop fields, plus the framing fields aiohttp recomputes.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
# Bodies up to this size with a known length are read whole: cheaper than streaming.
_BUFFER_LIMIT_BYTES = 1024 * 1024
_STOP_GRACE_S = 5.0


class HttpRuntime(RuntimeBase):
    """A warm function process behind a reverse proxy."""

    def __init__(self, config: WatchdogConfig, *, on_exit: Callable[[int], None]) -> None:
        self._config = config
        self._on_exit = on_exit
        self._base = config.upstream_url
        upstream = URL(config.upstream_url)
        self._host = upstream.host or "127.0.0.1"
        self._port = upstream.port or 80
        self._ready = asyncio.Event()
        self._stopping = False
        self._process: asyncio.subprocess.Process | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        config = self._config
        try:
            process = await asyncio.create_subprocess_exec(
                *config.fprocess,
                stdin=DEVNULL,
                stdout=PIPE,
                stderr=PIPE,
                start_new_session=True,
                limit=LINE_LIMIT_BYTES,
                preexec_fn=die_with_parent,  # one prctl call: see its docstring
            )
        except OSError as exc:
            raise WatchdogError(f"cannot start fprocess {config.fprocess[0]}: {exc}") from exc
        self._process = process
        _log.info("function_started", pid=process.pid, command=" ".join(config.fprocess))
        assert process.stdout is not None  # noqa: S101 - PIPE was asked for
        assert process.stderr is not None  # noqa: S101
        self._tasks = [
            asyncio.create_task(
                pump_lines(process.stdout, "stdout", prefix=config.prefix_logs), name="pump-stdout"
            ),
            asyncio.create_task(
                pump_lines(process.stderr, "stderr", prefix=config.prefix_logs), name="pump-stderr"
            ),
            asyncio.create_task(self._watch(process), name="watch-function"),
        ]
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self._stopping:
            return
        _log.error("function_exited", pid=process.pid, returncode=code)
        self._on_exit(code)

    async def wait_ready(self) -> None:
        """Poll the upstream's TCP port until it accepts; fail if the function exits first."""
        process = self._process
        if process is None:
            raise WatchdogError("http runtime not started")
        delay_s = 0.005
        started = time.monotonic()
        while True:
            if process.returncode is not None:
                code = process.returncode
                raise WatchdogError(f"fprocess exited with {code} before {self._base} accepted")
            try:
                async with asyncio.timeout(1.0):
                    _, writer = await asyncio.open_connection(self._host, self._port)
            except (OSError, TimeoutError):
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 0.1)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            break
        self._ready.set()
        _log.info("upstream_ready", url=self._base, after_s=round(time.monotonic() - started, 3))

    async def close(self) -> None:
        self._stopping = True
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._process is not None:
            code = await stop_process(self._process, grace_s=_STOP_GRACE_S)
            _log.info("function_stopped", pid=self._process.pid, returncode=code)
            self._process = None
        if self._tasks:
            # The pumps end at EOF once the process group is gone; do not wait forever on a
            # pipe some escaped grandchild still holds.
            _, pending = await asyncio.wait(self._tasks, timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        config = self._config
        timeout_s = call_timeout_s(config, request)
        started = time.perf_counter()
        # Holds the response once its headers are sent: after that a failure can only cut the
        # stream short, it cannot change the status.
        sent: list[web.StreamResponse] = []
        try:
            async with asyncio.timeout(timeout_s):
                if not self._ready.is_set():
                    await self._ready.wait()
                return await self._proxy(request, started, sent)
        except TimeoutError:
            _log.warning("upstream_timeout", limit_s=timeout_s, path=request.path)
            if sent:
                return sent[0]
            return internal_error(504, f"function did not answer within {timeout_s}s")
        except (aiohttp.ClientError, OSError) as exc:
            _log.error("upstream_error", error=repr(exc), path=request.path)
            if sent:
                return sent[0]
            return internal_error(500, f"cannot reach the function: {exc}")

    async def _proxy(
        self, request: web.BaseRequest, started: float, sent: list[web.StreamResponse]
    ) -> web.StreamResponse:
        session = self._session
        if session is None:
            return internal_error(503, "function is stopping")
        headers = CIMultiDict(
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _HOP_BY_HOP
        )
        data: bytes | aiohttp.StreamReader | None = None
        if request.body_exists:
            length = request.content_length
            if self._config.buffer_http or (length is not None and length <= _BUFFER_LIMIT_BYTES):
                data = await read_body(request, self._config)
            else:
                data = request.content
        url = URL(self._base + request.raw_path, encoded=True)
        async with session.request(
            request.method, url, headers=headers, data=data, allow_redirects=False
        ) as upstream:
            out_headers = CIMultiDict(
                (name, value)
                for name, value in upstream.headers.items()
                if name.lower() not in _HOP_BY_HOP
            )
            length = upstream.content_length
            if request.method == "HEAD" or (length is not None and length <= _BUFFER_LIMIT_BYTES):
                body = await upstream.read()
                out_headers["X-Duration-Seconds"] = format_duration(time.perf_counter() - started)
                return web.Response(
                    status=upstream.status, reason=upstream.reason, body=body, headers=out_headers
                )
            out_headers["X-Duration-Seconds"] = format_duration(time.perf_counter() - started)
            response = web.StreamResponse(
                status=upstream.status, reason=upstream.reason, headers=out_headers
            )
            await response.prepare(request)
            sent.append(response)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
