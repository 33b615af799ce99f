"""What a source hands the SDK (a :class:`SourceEvent`) and how its invocations are named.

One source event becomes one invocation per function its topic maps to. Each invocation's ids
are derived from the event and the function, never drawn at random per attempt:

    msg_id   ``<connector>:<event id>:<namespace>.<function>`` (hashed when long): the
             ``Nats-Msg-Id``. FAAS_INVOKE's duplicate window is stream-wide, so the function and
             namespace are part of it, or the second function of a topic would be dropped as a
             duplicate of the first.
    call_id  a UUID-5 of the msg_id: the same source event gives the same call id however often
             it is read again, so a redelivery outside the duplicate window still finds the
             call's record and the queue worker does not run a finished call twice.

A source gives ``event_id`` from the source's own identity (Kafka topic/partition/offset, SQS
message id, a cron tick, a NATS ``Nats-Msg-Id`` header). An event without one gets a random id
when it is created, which still makes the SDK's own publish retries idempotent.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

__all__ = ["FunctionRef", "SourceEvent", "invocation_ids"]

# Fixed namespace for call ids derived from message ids (uuid5); changing it changes every id.
_CALL_ID_NAMESPACE = uuid.UUID("6f1c1a3e-2b0e-5b7c-9d52-7a6f2d1c0b11")
_MAX_MSG_ID = 200


@dataclass(frozen=True, order=True)
class FunctionRef:
    """A deployed function, by namespace and name."""

    namespace: str
    name: str

    @property
    def label(self) -> str:
        """``name.namespace``: the ``function_name`` convention of OpenFaaS metrics."""
        return f"{self.name}.{self.namespace}"


def _random_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class SourceEvent:
    """One event read from a source, before it is routed.

    topic         what the topic map is asked about (``X-Topic``)
    body          becomes the invocation body, unchanged
    event_id      the event's identity in its source (see the module docstring)
    headers       extra headers for the function (``X-Kafka-Offset``, ``X-SQS-Message-ID``, ...)
    content_type  the event's own content type; the connector's ``content_type`` when empty
    """

    topic: str
    body: bytes = b""
    event_id: str = field(default_factory=_random_id)
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = ""


def invocation_ids(connector: str, event_id: str, target: FunctionRef) -> tuple[str, str]:
    """``(msg_id, call_id)`` of the invocation of ``target`` for one event."""
    msg_id = f"{connector}:{event_id}:{target.namespace}.{target.name}"
    if len(msg_id) > _MAX_MSG_ID:
        digest = hashlib.sha256(msg_id.encode()).hexdigest()
        msg_id = f"{connector}:sha256:{digest}"
    return msg_id, str(uuid.uuid5(_CALL_ID_NAMESPACE, msg_id))
