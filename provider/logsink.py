"""Replica output → the ``FAAS_LOGS`` stream, one message per line.

Each line a replica writes to stdout or stderr is published on
``faas.logs.<namespace>.<function>.<instance>`` with the line as the body; JetStream stamps the
time. Lines are published with core NATS publishes (the stream captures them; no per-line ack
round trip slows a chatty function down), so a line written while the bus is unreachable may be
lost — logs are best effort, invocations are not. Overlong lines are cut at 64 KiB.

The provider also writes its own lines about a replica (exit codes, restarts, start failures) to
the same subject, prefixed ``[faasbus-provider]``, so ``faas-cli logs`` shows why a replica is
crash-looping next to the traceback that caused it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats.errors
import structlog
from nats.aio.client import Client as NatsClient

from faasbus.bus import names

__all__ = ["LogSink", "pump_lines"]

log = structlog.get_logger(__name__)

MAX_LINE_BYTES = 64 * 1024
_READ_CHUNK = 64 * 1024
PROVIDER_PREFIX = "[faasbus-provider] "


class LogSink:
    """Publishes log lines of one replica instance."""

    def __init__(self, nc: NatsClient, namespace: str, function: str, instance: str) -> None:
        self._nc = nc
        self.subject = names.logs_subject(namespace, function, instance)
        self.dropped = 0

    async def line(self, data: bytes) -> None:
        if len(data) > MAX_LINE_BYTES:
            data = data[:MAX_LINE_BYTES]
        try:
            await self._nc.publish(self.subject, data)
        except (nats.errors.Error, OSError) as exc:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("log_line_dropped", subject=self.subject, dropped=self.dropped,
                            error=str(exc))  # fmt: skip

    async def provider_line(self, text: str) -> None:
        await self.line((PROVIDER_PREFIX + text).encode())


async def pump_lines(
    stream: asyncio.StreamReader,
    sink: LogSink,
    on_line: Callable[[bytes], None] | None = None,
) -> None:
    """Read ``stream`` to its end, publishing each line (and handing it to ``on_line``)."""
    buffer = b""
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            break
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            line, buffer = buffer[:newline].rstrip(b"\r"), buffer[newline + 1 :]
            await _emit(line, sink, on_line)
        if len(buffer) > MAX_LINE_BYTES:
            await _emit(buffer, sink, on_line)
            buffer = b""
    if buffer:
        await _emit(buffer.rstrip(b"\r"), sink, on_line)


async def _emit(line: bytes, sink: LogSink, on_line: Callable[[bytes], None] | None) -> None:
    if on_line is not None:
        on_line(line)
    if line.strip():
        await sink.line(line)
