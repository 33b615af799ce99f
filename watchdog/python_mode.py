"""``python`` mode, faasbus's fast path: import the handler once and call it in this process.

OpenFaaS runs a Python function as a second process behind a second HTTP hop (of-watchdog
``http`` mode in front of Flask). Here the watchdog imports ``handler.py`` itself and calls
``handle`` directly, so a call costs one aiohttp request and a function call.

Two signatures, matching the OpenFaaS templates of the same names:

* ``python3``: ``handle(req: str) -> str``. The body arrives as text; what is returned is the
  response, followed by a newline as the template's ``print(ret)`` writes it; ``None`` is an empty
  body.
* ``python3-http``: ``handle(event, context)``. ``event`` has ``body`` (bytes), ``headers``
  (case-insensitive mapping), ``method``, ``query`` (dict, first value of each key) and ``path``;
  ``context`` has ``hostname``. Return ``{"statusCode", "body", "headers"}`` (a ``dict`` or
  ``list`` body is sent as JSON), or a plain string, bytes, a list, or ``None``.

Either may be ``async def``. A plain ``def`` runs in a thread pool (``max_inflight`` threads, or 32;
see `threads` for why not ``run_in_executor``) so a slow handler never blocks ``/_/health``.
A call past its time limit is answered ``504`` with
``X-OpenFaaS-Internal`` (a thread cannot be killed: a sync handler runs on, its result dropped).
An exception is a ``500`` and is logged; the traceback is in the body only with ``write_debug``.

The handler's folder goes on ``sys.path`` (``import helpers`` works) and the module is loaded as
``function.handler`` of a package named ``function`` whose path is that folder, as in the
OpenFaaS templates, so ``from .helpers import x`` works too.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import inspect
import json
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from faasbus.watchdog.base import (
    RuntimeBase,
    call_timeout_s,
    format_duration,
    internal_error,
    read_body,
    response_content_type,
)
from faasbus.watchdog.config import Template, WatchdogConfig
from faasbus.watchdog.deadlines import Deadline, DeadlineWheel
from faasbus.watchdog.errors import HandlerLoadError
from faasbus.watchdog.logs import get_logger
from faasbus.watchdog.threads import HandlerThreads

__all__ = ["Context", "Event", "PythonRuntime", "load_handler"]

_log = get_logger(__name__)
_PACKAGE = "function"
_DEFAULT_THREADS = 32
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_BINARY = "application/octet-stream"


class Event:
    """The request as a python3-http handler sees it."""

    __slots__ = ("body", "headers", "method", "path", "query")

    def __init__(
        self,
        body: bytes,
        headers: Mapping[str, str],
        method: str,
        query: dict[str, str],
        path: str,
    ) -> None:
        self.body = body
        self.headers = headers
        self.method = method
        self.query = query
        self.path = path

    def __repr__(self) -> str:
        return f"Event(method={self.method!r}, path={self.path!r}, body={len(self.body)} bytes)"


class Context:
    """What a python3-http handler knows about where it runs."""

    __slots__ = ("hostname",)

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname

    def __repr__(self) -> str:
        return f"Context(hostname={self.hostname!r})"


def load_handler(path: Path, function: str = "handle") -> Callable[..., Any]:
    """Import `path` as ``function.<stem>`` and return its `function`.

    Raises `HandlerLoadError` with the traceback text when the import fails (including a
    ``SystemExit`` raised at import time) or the attribute is missing or not callable.
    """
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    if _PACKAGE not in sys.modules:
        package_spec = importlib.machinery.ModuleSpec(_PACKAGE, None, is_package=True)
        package_spec.submodule_search_locations = [folder]
        sys.modules[_PACKAGE] = importlib.util.module_from_spec(package_spec)
    module_name = f"{_PACKAGE}.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise HandlerLoadError(str(path), "not a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise HandlerLoadError(
            str(path), "".join(traceback.format_exception(exc)).rstrip()
        ) from exc
    handler = getattr(module, function, None)
    if handler is None:
        raise HandlerLoadError(str(path), f"it defines no {function!r}")
    if not callable(handler):
        raise HandlerLoadError(str(path), f"{function!r} is not callable")
    return handler  # type: ignore[no-any-return]


def _encode(body: Any) -> tuple[bytes, str | None]:
    """A handler's body as bytes, with the Content-Type it implies."""
    if body is None:
        return b"", None
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), _BINARY
    if isinstance(body, str):
        return body.encode(), _TEXT
    if isinstance(body, dict | list):
        return json.dumps(body).encode(), _JSON
    return str(body).encode(), _TEXT


class PythonRuntime(RuntimeBase):
    """Calls an imported handler for each request."""

    def __init__(self, config: WatchdogConfig, handler: Callable[..., Any]) -> None:
        self._config = config
        self._handler = handler
        self._is_async = inspect.iscoroutinefunction(handler)
        self._context = Context(config.hostname)
        self._threads: HandlerThreads | None = None
        self._wheel = DeadlineWheel()
        self._http = config.template is Template.PYTHON3_HTTP

    async def start(self) -> None:
        await self._wheel.__aenter__()
        if not self._is_async:
            self._threads = HandlerThreads(
                asyncio.get_running_loop(),
                max_threads=self._config.max_inflight or _DEFAULT_THREADS,
            )

    async def close(self) -> None:
        if self._threads is not None:
            self._threads.close()
            self._threads = None
        await self._wheel.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        config = self._config
        body = await read_body(request, config) if request.body_exists else b""
        args: tuple[Any, ...]
        if self._http:
            query = request.query
            event = Event(
                body,
                request.headers,
                request.method,
                {key: query[key] for key in query} if query else {},
                request.path,
            )
            args = (event, self._context)
        else:
            args = (body.decode(errors="replace"),)
        started = time.perf_counter()
        limit_s = call_timeout_s(config, request)
        deadline = self._wheel.arm(limit_s) if limit_s is not None else None
        try:
            result = await self._call(args)
        except asyncio.CancelledError:
            if deadline is None or not deadline.expired:
                raise
            return self._timed_out(deadline, request)
        except Exception as exc:
            return self._failed(exc, request)
        finally:
            if deadline is not None:
                self._wheel.disarm(deadline)
        if deadline is not None and deadline.expired:
            # The handler swallowed the cancellation; the limit still passed.
            return self._timed_out(deadline, request)
        duration = format_duration(time.perf_counter() - started)
        try:
            if self._http:
                return self._http_response(result, request, duration)
            return self._text_response(result, request, duration)
        except (TypeError, ValueError) as exc:
            return self._failed(exc, request)

    def _timed_out(self, deadline: Deadline, request: web.BaseRequest) -> web.Response:
        deadline.task.uncancel()
        _log.warning("handler_timeout", path=request.path)
        return internal_error(504, "handler did not answer within its time limit")

    async def _call(self, args: tuple[Any, ...]) -> Any:
        if self._is_async:
            return await self._handler(*args)
        threads = self._threads
        if threads is None:
            raise RuntimeError("python runtime not started")
        result = await threads.submit(self._handler, *args)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _failed(self, exc: BaseException, request: web.BaseRequest) -> web.Response:
        _log.error("handler_failed", path=request.path, exc_info=exc)
        if self._config.write_debug:
            text = "".join(traceback.format_exception(exc))
        else:
            text = "Internal Server Error\n"
        return web.Response(status=500, text=text)

    def _text_response(self, result: Any, request: web.BaseRequest, duration: str) -> web.Response:
        body = b"" if result is None else f"{result}\n".encode()
        content_type = response_content_type(self._config, request) or _TEXT
        return web.Response(
            body=body, headers={"Content-Type": content_type, "X-Duration-Seconds": duration}
        )

    def _http_response(self, result: Any, request: web.BaseRequest, duration: str) -> web.Response:
        del request  # the python3-http template never echoes the request's Content-Type
        status = 200
        if type(result) is dict:
            status = int(result.get("statusCode", 200))
            given = result.get("headers")
            headers = _headers(given) if given else CIMultiDict()
            body, implied = _encode(result.get("body"))
        else:
            headers = CIMultiDict()
            body, implied = _encode(result)
        content_type = self._config.content_type or implied
        if content_type is not None and "Content-Type" not in headers:
            headers["Content-Type"] = content_type
        headers["X-Duration-Seconds"] = duration
        return web.Response(status=status, body=body, headers=headers)


def _headers(given: Any) -> CIMultiDict[str]:
    """A handler's headers (a mapping or pairs) with every name and value as text."""
    pairs = given.items() if isinstance(given, Mapping) else given
    return CIMultiDict((str(name), str(value)) for name, value in pairs)
