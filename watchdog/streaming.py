"""``streaming`` mode (of-watchdog): fork per request and stream stdout to the client as written.

The request body is copied to stdin while it arrives, and each chunk the function writes is sent
at once (chunked transfer), so a long-running function can report progress. The status is
``200`` from the first byte on; after that a failure or the time limit can only cut the stream
short (and is logged). Before any output, a failure is a ``500`` as in ``serializing``. stderr
goes to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from asyncio.subprocess import PIPE

from aiohttp import web

from faasbus.watchdog.base import RuntimeBase, call_timeout_s, response_content_type
from faasbus.watchdog.cgi import request_environment
from faasbus.watchdog.classic import describe_exit
from faasbus.watchdog.config import WatchdogConfig
from faasbus.watchdog.logs import get_logger
from faasbus.watchdog.process import kill_group
from faasbus.watchdog.serializing import fork_function

__all__ = ["StreamingRuntime"]

_log = get_logger(__name__)
_CHUNK_BYTES = 64 * 1024


class StreamingRuntime(RuntimeBase):
    """Runs the function once per request, streaming both ways."""

    def __init__(self, config: WatchdogConfig) -> None:
        self._config = config
        self._base_env = dict(os.environ)

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        config = self._config
        env = request_environment(self._base_env, config, request)
        timeout_s = call_timeout_s(config, request)
        try:
            process, stdout, pump = await fork_function(config, env, stdin=PIPE)
        except OSError as exc:
            _log.error("function_start_failed", command=config.fprocess[0], error=str(exc))
            return web.Response(status=500, text=f"{exc}\n")
        helpers = [
            pump,
            asyncio.create_task(_copy_body(request, process), name=f"stdin-{process.pid}"),
        ]
        response: web.StreamResponse | None = None
        try:
            async with asyncio.timeout(timeout_s):
                while chunk := await stdout.read(_CHUNK_BYTES):
                    if response is None:
                        response = web.StreamResponse()
                        content_type = response_content_type(config, request)
                        response.headers["Content-Type"] = (
                            content_type or "application/octet-stream"
                        )
                        await response.prepare(request)
                    await response.write(chunk)
                returncode = await process.wait()
            # Let the log catch the function's last stderr lines (its pipe closes on exit).
            await asyncio.wait(helpers[:1], timeout=1.0)
        except TimeoutError:
            kill_group(process.pid)
            await process.wait()
            _log.warning(
                "function_timeout",
                limit_s=timeout_s,
                pid=process.pid,
                streamed=response is not None,
            )
            if response is None:
                return web.Response(status=500, text=f"function timed out after {timeout_s}s\n")
            # The status is sent; ending the stream early is all that is left to say.
            return response
        except BaseException:
            kill_group(process.pid)
            raise
        finally:
            for task in helpers:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

        if returncode != 0:
            _log.error(
                "function_failed", error=describe_exit(returncode), streamed=response is not None
            )
            if response is None:
                return web.Response(status=500, text=f"{describe_exit(returncode)}\n")
        if response is None:
            content_type = response_content_type(config, request) or "application/octet-stream"
            return web.Response(body=b"", headers={"Content-Type": content_type})
        await response.write_eof()
        return response


async def _copy_body(request: web.BaseRequest, process: asyncio.subprocess.Process) -> None:
    """Copy the request body into stdin as it arrives, then close stdin."""
    stdin = process.stdin
    if stdin is None:
        return
    try:
        if request.body_exists:
            async for chunk in request.content.iter_any():
                stdin.write(chunk)
                await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.close()
