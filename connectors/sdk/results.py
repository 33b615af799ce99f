"""Waiting for a call's outcome: for ``print_response`` and the NATS request/reply mode.

Connectors hand invocations to the bus and the queue worker runs them; the outcome is in the
call record (``faas_calls``) and the response body in the object store. This polls the record
with a growing interval (20 ms up to 500 ms) until it is final or the wait is over. Polling, not
a KV watch per call: it needs no consumer per waiter and rides out a bus outage unchanged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from faasbus.bus import CallRecord, CallStore

__all__ = ["CallResult", "wait_for_result"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CallResult:
    """A final call record and the response body the worker stored for it."""

    record: CallRecord
    body: bytes


async def wait_for_result(calls: CallStore, call_id: str, *, timeout_s: float) -> CallResult | None:
    """The outcome of ``call_id`` once final; None if it is not final within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    interval = 0.02
    while True:
        try:
            record = await calls.get(call_id)
            if record is not None and record.state.final:
                body = await calls.get_result(call_id) or b""
                return CallResult(record, body)
        except Exception as exc:  # the bus is away: keep waiting until the deadline
            log.debug("call_result_poll_failed", call_id=call_id, error=str(exc))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(interval, remaining))
        interval = min(interval * 2, 0.5)
