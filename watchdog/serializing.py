"""``serializing`` mode (of-watchdog): fork per request, read the whole output, then answer.

Unlike ``classic``, stderr is never part of the response: it is pumped into the log while the
function runs. Any failure — non-zero exit, a start error, the call's time limit — is a ``500``
(REFERENCE.md section 5); success is ``200`` with ``X-Duration-Seconds``. The response
Content-Type is ``content_type``, else the request's, else ``application/octet-stream`` as
of-watchdog defaults it.
"""

from __future__ import annotations

import asyncio
import os
import time
from asyncio.subprocess import DEVNULL, PIPE

from aiohttp import web

from faasbus.watchdog.base import (
    RuntimeBase,
    call_timeout_s,
    format_duration,
    read_body,
    response_content_type,
)
from faasbus.watchdog.cgi import request_environment
from faasbus.watchdog.classic import describe_exit
from faasbus.watchdog.config import WatchdogConfig
from faasbus.watchdog.logs import get_logger
from faasbus.watchdog.process import LINE_LIMIT_BYTES, kill_group, pump_lines

__all__ = ["SerializingRuntime", "fork_function"]

_log = get_logger(__name__)


class SerializingRuntime(RuntimeBase):
    """Runs the function once per request and answers with all it printed."""

    def __init__(self, config: WatchdogConfig) -> None:
        self._config = config
        self._base_env = dict(os.environ)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        config = self._config
        body = await read_body(request, config)
        env = request_environment(self._base_env, config, request)
        timeout_s = call_timeout_s(config, request)
        started = time.perf_counter()
        try:
            process, stdout, pump = await fork_function(
                config, env, stdin=PIPE if body else DEVNULL
            )
        except OSError as exc:
            _log.error("function_start_failed", command=config.fprocess[0], error=str(exc))
            return web.Response(status=500, text=f"{exc}\n")
        try:
            async with asyncio.timeout(timeout_s):
                # Feed and read together: a child that writes before it has read all of a
                # large body would otherwise block on a full pipe while we block on stdin.
                out, _ = await asyncio.gather(stdout.read(), _feed(process, body))
                returncode = await process.wait()
                await pump
        except TimeoutError:
            kill_group(process.pid)
            await process.wait()
            _log.warning("function_timeout", limit_s=timeout_s, pid=process.pid)
            return web.Response(status=500, text=f"function timed out after {timeout_s}s\n")
        except BaseException:
            kill_group(process.pid)
            raise
        finally:
            if not pump.done():
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        duration = time.perf_counter() - started
        if returncode != 0:
            _log.error("function_failed", error=describe_exit(returncode), duration_s=duration)
            return web.Response(status=500, text=f"{describe_exit(returncode)}\n")
        content_type = response_content_type(config, request) or "application/octet-stream"
        return web.Response(
            body=out,
            headers={"X-Duration-Seconds": format_duration(duration), "Content-Type": content_type},
        )


async def fork_function(
    config: WatchdogConfig, env: dict[str, str] | None, *, stdin: int
) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader, asyncio.Task[None]]:
    """Start ``fprocess`` for one call; return it, its stdout, and the task logging its stderr.

    The child leads its own session, so `kill_group` on a timeout takes its children too. The
    caller cancels the stderr task when the call ends. Raises OSError when it cannot start.
    """
    process = await asyncio.create_subprocess_exec(
        *config.fprocess,
        stdin=stdin,
        stdout=PIPE,
        stderr=PIPE,
        env=env,
        start_new_session=True,
        limit=LINE_LIMIT_BYTES,
    )
    assert process.stdout is not None  # noqa: S101 - PIPE was asked for
    assert process.stderr is not None  # noqa: S101
    pump = asyncio.create_task(
        pump_lines(process.stderr, "stderr", prefix=config.prefix_logs),
        name=f"stderr-{process.pid}",
    )
    return process, process.stdout, pump


async def _feed(process: asyncio.subprocess.Process, body: bytes) -> None:
    """Write `body` to the child's stdin and close it; a child that stops reading is fine."""
    stdin = process.stdin
    if stdin is None or not body:
        return
    try:
        stdin.write(body)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        stdin.close()
