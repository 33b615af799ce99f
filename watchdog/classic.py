"""``classic`` mode: fork ``fprocess`` for every request, as the OpenFaaS classic watchdog does.

The body goes to the child's stdin (or the ``marshal_request`` JSON document), request metadata
into ``Http_*`` environment variables, and what the child prints is the response:

* exit 0 -> ``200`` with ``X-Duration-Seconds`` and the Content-Type rule of `base`;
* non-zero exit -> ``500`` with the error (``exit status 2``) and the output, as Go words it;
* over the call's time limit -> ``408 Killed process.``, after killing the child's whole group.

``combine_output`` (default on) sends stderr into the same pipe as stdout, so the response keeps
the order in which the function wrote; off, stderr lines go to the log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from aiohttp import web

from faasbus.watchdog.base import (
    RuntimeBase,
    call_timeout_s,
    format_duration,
    read_body,
    response_content_type,
)
from faasbus.watchdog.cgi import marshal_request, request_environment
from faasbus.watchdog.config import WatchdogConfig
from faasbus.watchdog.logs import get_logger
from faasbus.watchdog.process import emit_line
from faasbus.watchdog.spawn import Spawner

__all__ = ["ClassicRuntime", "describe_exit"]

_log = get_logger(__name__)


def describe_exit(returncode: int) -> str:
    """Go's ``exec.ExitError`` text: ``exit status 1`` or ``signal: killed``."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        name = signal.strsignal(-returncode) or f"signal {-returncode}"
    except ValueError:
        name = f"signal {-returncode}"
    return f"signal: {name.lower()}"


class ClassicRuntime(RuntimeBase):
    """Runs the function once per request."""

    def __init__(self, config: WatchdogConfig) -> None:
        self._config = config
        self._command = config.fprocess
        # Copied once: os.environ is a mapping that encodes on every access.
        self._base_env = dict(os.environ)
        self._spawner: Spawner | None = None

    async def start(self) -> None:
        self._spawner = Spawner(asyncio.get_running_loop())

    async def close(self) -> None:
        if self._spawner is not None:
            self._spawner.close()
            self._spawner = None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        config = self._config
        body = await read_body(request, config)
        stdin = marshal_request(request.headers, body) if config.marshal_request else body
        env = request_environment(self._base_env, config, request)
        timeout_s = call_timeout_s(config, request)
        started = time.perf_counter()
        try:
            if self._spawner is None:
                raise RuntimeError("classic runtime not started")
            returncode, out, err = await self._spawner.run(
                self._command,
                stdin,
                env or self._base_env,
                combine=config.combine_output,
                timeout_s=timeout_s,
            )
        except TimeoutError:
            _log.warning("function_timeout", limit_s=timeout_s)
            return web.Response(status=408, text="Killed process.\n")
        except OSError as exc:
            _log.error("function_start_failed", command=self._command[0], error=str(exc))
            return web.Response(status=500, text=f"{exc}\n")
        duration = time.perf_counter() - started

        if err:
            for line in err.splitlines():
                emit_line("stderr", line, prefix=config.prefix_logs)
        if config.write_debug:
            _log.debug(
                "function_call",
                status=returncode,
                duration_s=duration,
                output=out.decode("utf-8", "replace"),
            )
        if returncode != 0:
            _log.error("function_failed", error=describe_exit(returncode), duration_s=duration)
            return web.Response(
                status=500,
                body=describe_exit(returncode).encode() + b"\n" + out,
                content_type="text/plain",
            )
        headers = {"X-Duration-Seconds": format_duration(duration)}
        content_type = response_content_type(config, request)
        if content_type:
            headers["Content-Type"] = content_type
        return web.Response(body=out, headers=headers)
