"""A tiny HTTP function for ``http`` mode tests, listening on ``UPSTREAM_PORT``.

``UPSTREAM_DELAY`` seconds pass before it listens (a slow cold start). Routes:
``/echo`` answers the body back with status ``?status=`` and headers that show what arrived;
``/slow`` waits 30 s; ``/abort`` drops the connection without answering; ``/exit`` exits with 7.
"""

import asyncio
import os
import sys

from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(
        status=int(request.query.get("status", "200")),
        body=body,
        headers={
            "X-Upstream": "yes",
            "X-Seen-Path": request.path_qs,
            "X-Seen-Method": request.method,
            "X-Seen-Custom": request.headers.get("X-Custom", ""),
            "Content-Type": request.headers.get("Content-Type", "application/octet-stream"),
        },
    )


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(text="late")


async def abort(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.abort()
    await asyncio.sleep(1)
    return web.Response(text="never")


async def exit_soon(request: web.Request) -> web.Response:
    asyncio.get_running_loop().call_later(0.05, os._exit, 7)
    return web.Response(text="bye")


async def main() -> None:
    print("upstream says hello on stdout", flush=True)
    print("upstream says hello on stderr", file=sys.stderr, flush=True)
    await asyncio.sleep(float(os.environ.get("UPSTREAM_DELAY", "0")))
    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/abort", abort)
    app.router.add_get("/exit", exit_soon)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["UPSTREAM_PORT"])).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
