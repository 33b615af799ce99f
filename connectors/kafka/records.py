"""One Kafka record → one :class:`~faasbus.connectors.sdk.SourceEvent` (REFERENCE.md section 2).

The record's value is the body. Its coordinates travel as ``X-Kafka-Topic``,
``X-Kafka-Partition``, ``X-Kafka-Offset`` and, when it has one, ``X-Kafka-Key``: a key that is
not printable UTF-8 is sent base64 with ``X-Kafka-Key-Enc: b64``. Each record header ``h``
becomes ``X-Kafka-<h>`` (name reduced to HTTP token characters; a value that is not printable
UTF-8 is base64 with ``X-Kafka-<h>-Enc: b64``); a ``content-type`` header is also the
invocation's Content-Type.

The event id is ``<topic>/<partition>/<offset>``: the record's identity in Kafka, so a record
read again after a crash or a rebalance gives the same ``Nats-Msg-Id`` and call id, and is not
run twice (within FAAS_INVOKE's duplicate window, and beyond it by call id).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

from faasbus.connectors.sdk import SourceEvent

__all__ = ["record_event", "text_or_base64"]

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]")


def text_or_base64(value: bytes) -> tuple[str, bool]:
    """``(text, False)`` for printable UTF-8, else ``(base64, True)``."""
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return base64.b64encode(value).decode(), True
    if text.isprintable():
        return text, False
    return base64.b64encode(value).decode(), True


def record_event(
    topic: str,
    partition: int,
    offset: int,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
) -> SourceEvent:
    forwarded = [
        ("X-Kafka-Topic", topic),
        ("X-Kafka-Partition", str(partition)),
        ("X-Kafka-Offset", str(offset)),
    ]
    if key is not None:
        text, encoded = text_or_base64(key)
        forwarded.append(("X-Kafka-Key", text))
        if encoded:
            forwarded.append(("X-Kafka-Key-Enc", "b64"))
    content_type = ""
    for name, raw in headers:
        clean = _NOT_TOKEN.sub("-", name)
        if not clean:
            continue
        text, encoded = text_or_base64(raw or b"")
        if clean.lower() == "content-type" and not encoded:
            content_type = text
        forwarded.append((f"X-Kafka-{clean}", text))
        if encoded:
            forwarded.append((f"X-Kafka-{clean}-Enc", "b64"))
    return SourceEvent(
        topic=topic,
        body=value or b"",
        event_id=f"{topic}/{partition}/{offset}",
        headers=tuple(forwarded),
        content_type=content_type,
    )
