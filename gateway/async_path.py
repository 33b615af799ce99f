"""The asynchronous path: ``/async-function``, cancel, call records and dead letters over HTTP.

``POST /async-function/NAME[/path]`` turns the request into one message on FAAS_INVOKE (the shared
envelope) and answers ``202`` with ``X-Call-Id`` only once JetStream has acked it: a ``202`` means
the platform owns the call. Before publishing it writes the call record (``queued``). A client
retrying with the same ``X-Call-Id`` gets another ``202`` but no second run (the record already
exists and the publish is dropped as a duplicate within the dedupe window).

Refused with a clear message: an unknown function (``404``, where OpenFaaS answers ``202``), an
invalid call id or callback URL (``400``), a body over ``max_async_body_size`` (``413``), and a bus
that cannot take the message (``503``, never a fake ``202``). Bodies over the server's max payload
travel through the object store ``faas_payloads`` and are referenced from the message.

``DELETE /async-function/{call id}`` cancels: the record is marked, and running workers are told on
``faas.control.cancel``; a queued call is finished as ``cancelled`` without running when a worker
picks it up. Its callback (if any) has an empty body, ``X-Function-Status: 499`` and
``X-Call-State: cancelled``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import aiohttp
import nats.errors
import structlog
from aiohttp import web

from faasbus.bus import (
    Bus,
    CallbackUrlError,
    CallRecord,
    CallStore,
    DeadLetters,
    FunctionCatalog,
    Invocation,
    check_callback_url,
    is_valid_call_id,
    names,
)
from faasbus.gateway.errors import internal_error

__all__ = ["AsyncPath", "AsyncResources", "async_routes", "calls_routes"]

log = structlog.get_logger(__name__)

# Room left for headers when deciding whether a body fits in one NATS message.
_HEADER_ROOM = 16 * 1024


def _json_error(status: type[web.HTTPException], text: str) -> web.HTTPException:
    return status(text=text + "\n", content_type="text/plain")


@dataclass(frozen=True)
class AsyncResources:
    bus: Bus
    catalog: FunctionCatalog
    calls: CallStore
    session: aiohttp.ClientSession


class AsyncPath:
    """Handlers of the async family; resources are set by ``create_app``'s contexts."""

    def __init__(
        self,
        *,
        max_async_body_size: int,
        max_result_bytes: int,
        allow_link_local_callbacks: bool,
        provider_url: str,
        provider_authorization: str | None = None,
    ) -> None:
        self.max_async_body_size = max_async_body_size
        self.max_result_bytes = max_result_bytes
        self.allow_link_local = allow_link_local_callbacks
        self.provider_url = provider_url.rstrip("/")
        self.provider_headers = (
            {"Authorization": provider_authorization} if provider_authorization else {}
        )
        self._resources: AsyncResources | None = None

    def start(self, resources: AsyncResources) -> None:
        self._resources = resources

    def stop(self) -> None:
        self._resources = None

    @property
    def res(self) -> AsyncResources:
        if self._resources is None:
            raise internal_error(503, "the async path is not started")
        return self._resources

    # ------------------------------------------------------------------ enqueue

    async def _exists(self, namespace: str, function: str) -> bool:
        if self.res.catalog.get(namespace, function) is not None:
            return True
        # Just deployed and not yet seen by the watch, or a provider that is not ours: ask it.
        url = f"{self.provider_url}/system/function/{function}"
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self.res.session.get(
                url, params={"namespace": namespace}, headers=self.provider_headers,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:  # fmt: skip
                return response.status == 200
        return False

    async def enqueue(self, request: web.Request) -> web.Response:
        bus, calls = self.res.bus, self.res.calls
        name = request.match_info["name"]
        function, _, namespace = name.rpartition(".")
        if not function:
            function, namespace = name, names.DEFAULT_NAMESPACE
        if not (names.is_dns1123_label(function) and names.is_dns1123_label(namespace)):
            raise _json_error(web.HTTPBadRequest, f"invalid function name {name!r}")
        call_id = request.headers.get("X-Call-Id") or str(uuid.uuid4())
        if not is_valid_call_id(call_id):
            raise _json_error(
                web.HTTPBadRequest,
                "X-Call-Id must be 1-128 letters, digits, '-', '_' or '='",
            )
        callback_url = request.headers.get("X-Callback-Url", "")
        if callback_url:
            try:
                check_callback_url(callback_url, allow_link_local=self.allow_link_local)
            except CallbackUrlError as exc:
                raise _json_error(web.HTTPBadRequest, str(exc)) from None
        if not await self._exists(namespace, function):
            raise _json_error(web.HTTPNotFound, f"function {function}.{namespace} not found")
        if (request.content_length or 0) > self.max_async_body_size:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.max_async_body_size, actual_size=request.content_length or 0
            )
        body = await self._read_body(request)
        invocation = Invocation(
            call_id=call_id,
            namespace=namespace,
            function=function,
            body=body,
            method=request.method,
            path="/" + request.match_info.get("path", ""),
            query=request.query_string,
            content_type=request.headers.get("Content-Type", ""),
            callback_url=callback_url,
            source="gateway",
            headers=Invocation.forwardable(
                (k, v) for k, v in request.headers.items()
                if k.lower() not in ("x-callback-url", "x-call-id", "content-type")
            ),
        )  # fmt: skip
        try:
            if len(body) > bus.max_payload - _HEADER_ROOM:
                store = await bus.js.object_store(names.PAYLOADS_BUCKET)
                ref = f"payloads/{call_id}"
                await store.put(ref, body)
                invocation = replace(invocation, body=b"", payload_ref=ref)
            record = CallRecord(
                call_id=call_id, function=function, namespace=namespace,
                callback_url=callback_url, queued_at=invocation.enqueued_at_ns / 1e9,
            )  # fmt: skip

            async def create_record() -> None:
                with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                    await calls.create(record)  # a retried call id keeps its record

            # Both in flight at once: the record's create never overwrites (a worker that was
            # faster has already written a newer state), and the client waits one round trip.
            outcomes = await asyncio.gather(
                create_record(),
                bus.js.publish(
                    invocation.subject, invocation.body, headers=invocation.nats_headers()
                ),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            log.warning("enqueue_failed", function=function, error=str(exc))
            raise internal_error(503, f"the bus cannot take the call now: {exc}", call_id) from exc
        return web.Response(status=202, headers={"X-Call-Id": call_id})

    async def _read_body(self, request: web.Request) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_async_body_size:
                raise web.HTTPRequestEntityTooLarge(
                    max_size=self.max_async_body_size, actual_size=size
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def cancel(self, request: web.Request) -> web.Response:
        bus, calls = self.res.bus, self.res.calls
        call_id = request.match_info["name"]
        record = await calls.get(call_id) if is_valid_call_id(call_id) else None
        if record is None:
            raise _json_error(web.HTTPNotFound, f"call {call_id} not found")
        if record.state.final:
            raise _json_error(web.HTTPConflict, f"call {call_id} already {record.state.value}")
        await calls.update(call_id, lambda r: replace(r, cancel_requested=True), create=record)
        await bus.nc.publish(names.CANCEL_SUBJECT, call_id.encode())
        return web.Response(status=202, headers={"X-Call-Id": call_id})

    # ------------------------------------------------------------------ records

    async def get_call(self, request: web.Request) -> web.Response:
        record = await self.res.calls.get(request.match_info["call_id"])
        if record is None:
            raise _json_error(web.HTTPNotFound, f"call {request.match_info['call_id']} not found")
        return web.json_response(record.to_wire())

    async def get_result(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        record = await self.res.calls.get(call_id)
        if record is None:
            raise _json_error(web.HTTPNotFound, f"call {call_id} not found")
        body = await self.res.calls.get_result(call_id) if record.state.final else None
        if body is None:
            raise _json_error(web.HTTPNotFound, f"call {call_id} has no result yet")
        shown = body[: self.max_result_bytes]
        try:
            text, encoding = shown.decode(), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(shown).decode(), "base64"
        return web.json_response({
            "callId": call_id,
            "status": record.status_code,
            "headers": record.result_headers,
            "body": text,
            "bodyEncoding": encoding,
            "size": len(body),
            "truncated": len(body) > len(shown),
        })  # fmt: skip

    # ------------------------------------------------------------------ dead letters

    def _letters(self) -> DeadLetters:
        return DeadLetters(self.res.bus.js, self.res.calls)

    async def list_dead(self, request: web.Request) -> web.Response:
        function = request.query.get("function") or None
        namespace = request.query.get("namespace") or None
        try:
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            raise _json_error(web.HTTPBadRequest, "limit must be an integer") from None
        entries = [
            letter.to_wire()
            async for letter in self._letters().iterate(
                namespace=namespace, function=function, limit=limit
            )
        ]
        return web.json_response(entries)

    async def get_dead(self, request: web.Request) -> web.Response:
        letter = await self._letters().get(_seq(request))
        if letter is None:
            raise _json_error(web.HTTPNotFound, f"dead letter {_seq(request)} not found")
        return web.json_response(letter.to_wire(with_body=True))

    async def delete_dead(self, request: web.Request) -> web.Response:
        if not await self._letters().delete(_seq(request)):
            raise _json_error(web.HTTPNotFound, f"dead letter {_seq(request)} not found")
        return web.Response(status=202)

    async def redrive(self, request: web.Request) -> web.Response:
        """Body: ``{"seq": N}`` or ``{"function", "namespace"}`` and/or ``{"since", "until"}``."""
        selector = await _json_body(request)
        letters = self._letters()
        chosen = []
        if "seq" in selector:
            letter = await letters.get(_int(selector, "seq"))
            if letter is None:
                raise _json_error(web.HTTPNotFound, f"dead letter {selector['seq']} not found")
            chosen.append(letter)
        else:
            since = _time(selector, "since", 0.0)
            until = _time(selector, "until", time.time() + 1)
            chosen.extend([
                letter
                async for letter in letters.iterate(
                    namespace=_opt_str(selector, "namespace"),
                    function=_opt_str(selector, "function"),
                )
                if since <= letter.dead_at_ns / 1e9 <= until
            ])  # fmt: skip
        redriven = [await letters.redrive(letter) for letter in chosen]
        return web.json_response({"redriven": len(redriven), "callIds": redriven}, status=202)

    async def purge(self, request: web.Request) -> web.Response:
        await self._letters().purge(
            namespace=request.query.get("namespace") or None,
            function=request.query.get("function") or None,
        )
        return web.Response(status=202)


def _seq(request: web.Request) -> int:
    try:
        return int(request.match_info["seq"])
    except ValueError:
        raise _json_error(web.HTTPBadRequest, "a dead letter is named by its number") from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        import json  # noqa: PLC0415 - only this rarely used route needs it

        body = json.loads(raw)
    except ValueError as exc:
        raise _json_error(web.HTTPBadRequest, f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _json_error(web.HTTPBadRequest, "body must be a JSON object")
    return body


def _int(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int):
        raise _json_error(web.HTTPBadRequest, f"{key} must be an integer")
    return value


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not names.is_dns1123_label(value):
        raise _json_error(web.HTTPBadRequest, f"{key} must be a valid name")
    return value


def _time(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        raise _json_error(web.HTTPBadRequest, f"{key} must be an RFC 3339 time") from None


def async_routes(path: AsyncPath) -> list[web.RouteDef]:
    """``/async-function``: open like ``/function`` (OpenFaaS)."""
    return [
        web.post("/async-function/{name}", path.enqueue),
        web.post("/async-function/{name}/{path:.*}", path.enqueue),
        web.delete("/async-function/{name}", path.cancel),
    ]


def calls_routes(path: AsyncPath, guard: Any) -> list[web.RouteDef]:
    """``/system/calls`` and ``/system/dlq``: register before the /system catch-all."""
    return [
        web.get("/system/calls/{call_id}", guard(path.get_call), allow_head=False),
        web.get("/system/calls/{call_id}/result", guard(path.get_result), allow_head=False),
        web.get("/system/dlq", guard(path.list_dead), allow_head=False),
        web.delete("/system/dlq", guard(path.purge)),
        web.post("/system/dlq/redrive", guard(path.redrive)),
        web.get("/system/dlq/{seq}", guard(path.get_dead), allow_head=False),
        web.delete("/system/dlq/{seq}", guard(path.delete_dead)),
    ]
