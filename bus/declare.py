"""Idempotent declaration of the streams and buckets of the bus contract (names.py).

Every component calls :func:`declare_bus` at start; the first creates, the rest find what exists.
When a mutable limit changed in the settings (an age, a size, a TTL) the stream is updated to it;
what JetStream cannot change in place (retention, storage) is left as it is and logged.

FAAS_INVOKE uses work-queue retention: an acked invocation is removed, so the stream holds exactly
what is still owed. Its duplicate window is the dedupe window for call ids (``Nats-Msg-Id``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import nats.js.errors
import structlog
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from faasbus.bus import names
from faasbus.bus.connection import BusSettings

__all__ = ["declare_bus", "stream_configs"]

log = structlog.get_logger(__name__)

_MUTABLE_FIELDS = ("subjects", "max_age", "max_bytes", "duplicate_window", "num_replicas",
                   "discard", "description")  # fmt: skip


def stream_configs(settings: BusSettings) -> list[StreamConfig]:
    """The three streams of the contract, sized by ``settings``."""
    return [
        _file_stream(settings, names.INVOKE_STREAM, names.INVOKE_PREFIX, RetentionPolicy.WORK_QUEUE,
                     description="one message per async invocation",
                     duplicate_window=settings.dedupe_window_s, max_age=settings.invoke_max_age_s),
        _file_stream(settings, names.DLQ_STREAM, names.DEAD_PREFIX, RetentionPolicy.LIMITS,
                     description="invocations that exhausted retries or were refused",
                     max_age=settings.dlq_max_age_s),
        _file_stream(settings, names.LOGS_STREAM, names.LOGS_PREFIX, RetentionPolicy.LIMITS,
                     description="one message per function log line", discard=DiscardPolicy.OLD,
                     max_age=settings.logs_max_age_s, max_bytes=settings.logs_max_bytes),
    ]  # fmt: skip


def _file_stream(
    settings: BusSettings, name: str, prefix: str, retention: RetentionPolicy, **fields: Any
) -> StreamConfig:
    """A stream of every subject under ``prefix``, on file, with ``settings.replicas`` copies."""
    return StreamConfig(
        name=name,
        subjects=[f"{prefix}.>"],
        retention=retention,
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        **fields,
    )


def _kv_configs(settings: BusSettings) -> list[KeyValueConfig]:
    return [
        KeyValueConfig(bucket=names.FUNCTIONS_BUCKET, history=5, storage=StorageType.FILE,
                       replicas=settings.replicas),
        KeyValueConfig(bucket=names.ENDPOINTS_BUCKET, history=1, ttl=settings.endpoint_ttl_s,
                       storage=StorageType.FILE, replicas=settings.replicas),
        KeyValueConfig(bucket=names.CALLS_BUCKET, history=1, ttl=settings.calls_ttl_s,
                       storage=StorageType.FILE, replicas=settings.replicas),
    ]  # fmt: skip


async def _ensure_stream(js: JetStreamContext, wanted: StreamConfig) -> None:
    name = wanted.name or ""
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        await js.add_stream(wanted)
        log.info("stream_created", stream=name)
        return
    current = info.config
    changes = {
        field: getattr(wanted, field)
        for field in _MUTABLE_FIELDS
        # 0 and None mean "server default" in a wanted config: nothing to converge to.
        if getattr(wanted, field) not in (None, 0)
        and getattr(wanted, field) != getattr(current, field)
    }
    if changes:
        await js.update_stream(replace(current, **changes))
        log.info("stream_updated", stream=name, changed=sorted(changes))


async def _ensure_kv(js: JetStreamContext, wanted: KeyValueConfig) -> None:
    stream = f"KV_{wanted.bucket}"
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        await js.create_key_value(wanted)
        log.info("kv_created", bucket=wanted.bucket)
        return
    if (info.config.max_age or None) != (wanted.ttl or None):
        await js.update_stream(replace(info.config, max_age=wanted.ttl or 0))
        log.info("kv_updated", bucket=wanted.bucket, ttl_s=wanted.ttl)


async def declare_bus(js: JetStreamContext, settings: BusSettings) -> None:
    """Create or converge every stream, KV bucket and the payload object store."""
    for stream in stream_configs(settings):
        await _ensure_stream(js, stream)
    for kv in _kv_configs(settings):
        await _ensure_kv(js, kv)
    try:
        await js.object_store(names.PAYLOADS_BUCKET)
    except nats.js.errors.BucketNotFoundError:
        await js.create_object_store(
            names.PAYLOADS_BUCKET, ttl=settings.calls_ttl_s, storage=StorageType.FILE,
            replicas=settings.replicas,
        )  # fmt: skip
        log.info("object_store_created", bucket=names.PAYLOADS_BUCKET)
