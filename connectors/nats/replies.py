"""Answers to NATS requests (messages with a reply subject), by ``FAASBUS_NATS_REPLY`` mode.

``ack`` (default): answered once JetStream acked every invocation of the message — the moment the
platform owns the work — with JSON ``{"topic": ..., "calls": [{"function", "namespace",
"call_id"}]}``. A requester that retries until it gets this answer, and sets a ``Nats-Msg-Id``
header on its message, gets an at-least-once hand-off that runs each function once (the header
is the event's identity, so a retried message is a duplicate within the dedupe window).

``response``: answered with the function's response, waited for through the call record (the
call still runs on the async path: retries, dead letters and call records apply; the reply waits
up to ``upstream_timeout``). With one subscribing function the reply is its response body, with
its response headers plus ``X-Call-Id``, ``X-Function-Name``, ``X-Function-Status``,
``X-Call-State`` and ``X-Duration-Seconds``. With several, it is a JSON list with one
``{"function", "namespace", "call_id", "state", "status", "body"}`` per function (``body`` as
text, or ``body_base64`` when it is not UTF-8). A call that is not final in time is answered with
``X-Function-Status: 504`` (``state: "pending"`` in the list); it keeps running and its record
is at ``/system/calls/{call id}``.

A topic no function subscribes to is answered with an empty body, ``X-Function-Status: 404`` and
``X-Faasbus-Error`` saying so, in every mode.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from faasbus.bus import Invocation
from faasbus.connectors.sdk import CallResult, Handoff

__all__ = ["Reply", "ack_reply", "response_reply", "unrouted_reply"]

Reply = tuple[bytes, dict[str, str]]

# Response headers that describe the HTTP connection, not the response: never replayed.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)


def _clean(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def unrouted_reply(topic: str) -> Reply:
    return b"", {
        "X-Topic": _clean(topic),
        "X-Function-Status": "404",
        "X-Faasbus-Error": _clean(f"no function subscribes to topic {topic}"),
    }


def ack_reply(handoff: Handoff) -> Reply:
    calls = [
        {"function": inv.function, "namespace": inv.namespace, "call_id": inv.call_id}
        for inv in handoff.invocations
    ]
    body = json.dumps({"topic": handoff.event.topic, "calls": calls}).encode()
    return body, {"Content-Type": "application/json", "X-Topic": _clean(handoff.event.topic)}


def _one(inv: Invocation, result: CallResult | None) -> Reply:
    headers = {"X-Call-Id": inv.call_id, "X-Function-Name": inv.function}
    if result is None:
        headers["X-Function-Status"] = "504"
        headers["X-Call-State"] = "pending"
        headers["X-Faasbus-Error"] = (
            f"no result within upstream_timeout; see /system/calls/{inv.call_id}"
        )
        return b"", headers
    record = result.record
    for name, value in record.result_headers.items():
        if name.lower() not in _HOP_HEADERS:
            headers.setdefault(name, _clean(value))
    headers["X-Function-Status"] = str(record.status_code)
    headers["X-Call-State"] = record.state.value
    headers["X-Duration-Seconds"] = f"{record.duration_s:.6f}"
    return result.body, headers


def _entry(inv: Invocation, result: CallResult | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "function": inv.function, "namespace": inv.namespace, "call_id": inv.call_id,
    }  # fmt: skip
    if result is None:
        entry.update(state="pending", status=504)
        return entry
    entry.update(state=result.record.state.value, status=result.record.status_code)
    try:
        entry["body"] = result.body.decode()
    except UnicodeDecodeError:
        entry["body_base64"] = base64.b64encode(result.body).decode()
    return entry


def response_reply(handoff: Handoff, results: Sequence[CallResult | None]) -> Reply:
    pairs = list(zip(handoff.invocations, results, strict=True))
    if len(pairs) == 1:
        return _one(*pairs[0])
    body = json.dumps([_entry(inv, result) for inv, result in pairs]).encode()
    return body, {"Content-Type": "application/json", "X-Topic": _clean(handoff.event.topic)}
