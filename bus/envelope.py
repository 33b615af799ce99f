"""The invocation envelope: one module owns how an invocation travels on FAAS_INVOKE.

The message body is the raw request body (no base64, no JSON wrapper); everything else is a NATS
header (ARCHITECTURE.md section 3). Header names:

    Nats-Msg-Id           the dedupe id: the call id, or an id derived from the source event
    Faas-Call-Id          the call id (X-Call-Id) the record, the callback and the function see
    Faas-Function         function name          Faas-Namespace   its namespace
    Faas-Method           HTTP method (POST)     Faas-Path        path after the function name
    Faas-Query            raw query string       Faas-Content-Type
    Faas-Callback-Url     where to POST the result (X-Callback-Url)
    Faas-Source           gateway | cron | kafka | sqs | nats      Faas-Topic   topic that fired
    Faas-Enqueued-At      Unix nanoseconds when the call was accepted
    Faas-Payload          object name in faas_payloads when the body was too large to carry
    Faas-H-<Name>         an original request header, passed on to the function

Attempts are not in the envelope: JetStream counts deliveries, and a retry is a redelivery of the
same message. Encoding and decoding are exact inverses (tested), and decoding ignores headers it
does not know, so older workers read newer messages.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Self

from faasbus.bus import names

__all__ = ["HEADER_PREFIX", "Invocation", "Source"]

HEADER_PREFIX = "Faas-H-"

Source = str  # "gateway" | "cron" | "kafka" | "sqs" | "nats"

# Headers that must not be replayed to the function from the envelope: they describe the
# original connection, not the call.
_NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
     "proxy-authorization", "proxy-authenticate", "host", "content-length"}
)  # fmt: skip


@dataclass(frozen=True)
class Invocation:
    """One asynchronous call of one function."""

    call_id: str
    namespace: str
    function: str
    body: bytes = b""
    method: str = "POST"
    path: str = "/"
    query: str = ""
    content_type: str = ""
    callback_url: str = ""
    source: Source = "gateway"
    topic: str = ""
    msg_id: str = ""
    enqueued_at_ns: int = field(default_factory=time.time_ns)
    payload_ref: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def subject(self) -> str:
        return names.invoke_subject(self.namespace, self.function)

    @property
    def dedupe_id(self) -> str:
        return self.msg_id or self.call_id

    @staticmethod
    def forwardable(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """The request headers worth replaying to the function."""
        return tuple((k, v) for k, v in headers if k.lower() not in _NOT_FORWARDED)

    def nats_headers(self) -> dict[str, str]:
        out = {
            "Nats-Msg-Id": self.dedupe_id,
            "Faas-Call-Id": self.call_id,
            "Faas-Function": self.function,
            "Faas-Namespace": self.namespace,
            "Faas-Method": self.method,
            "Faas-Path": self.path,
            "Faas-Source": self.source,
            "Faas-Enqueued-At": str(self.enqueued_at_ns),
        }
        optional = {
            "Faas-Query": self.query,
            "Faas-Content-Type": self.content_type,
            "Faas-Callback-Url": self.callback_url,
            "Faas-Topic": self.topic,
            "Faas-Payload": self.payload_ref,
        }
        out.update({k: v for k, v in optional.items() if v})
        for name, value in self.headers:
            key = HEADER_PREFIX + name
            # NATS headers are a multimap in Go but a dict in nats-py: join repeats as HTTP does.
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    @classmethod
    def from_message(cls, headers: Mapping[str, str] | None, body: bytes) -> Self:
        """Decode a FAAS_INVOKE or FAAS_DLQ message; raises ValueError naming a missing header."""
        h = dict(headers or {})

        def required(name: str) -> str:
            value = h.get(name)
            if not value:
                raise ValueError(f"invocation message without {name} header")
            return value

        try:
            enqueued = int(h.get("Faas-Enqueued-At", "0"))
        except ValueError:
            enqueued = 0
        forwarded = tuple(
            (k[len(HEADER_PREFIX) :], v) for k, v in h.items() if k.startswith(HEADER_PREFIX)
        )
        call_id = required("Faas-Call-Id")
        msg_id = h.get("Nats-Msg-Id", "")
        return cls(
            call_id=call_id,
            namespace=required("Faas-Namespace"),
            function=required("Faas-Function"),
            body=body,
            method=h.get("Faas-Method", "POST"),
            path=h.get("Faas-Path", "/"),
            query=h.get("Faas-Query", ""),
            content_type=h.get("Faas-Content-Type", ""),
            callback_url=h.get("Faas-Callback-Url", ""),
            source=h.get("Faas-Source", "gateway"),
            topic=h.get("Faas-Topic", ""),
            msg_id="" if msg_id == call_id else msg_id,
            enqueued_at_ns=enqueued,
            payload_ref=h.get("Faas-Payload", ""),
            headers=forwarded,
        )
