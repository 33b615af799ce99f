"""Reading function logs back from ``FAAS_LOGS`` for ``GET /system/logs``.

Query parameters (faas-provider's): ``name`` (required), ``namespace`` (default
``openfaas-fn``), ``instance`` (one replica), ``tail`` (the last N lines; ``-1`` or ``0``:
unlimited), ``since`` (RFC 3339 with an offset, e.g. ``2024-05-01T10:00:00+01:00``), ``follow``
(keep streaming new lines until the client leaves). A malformed ``tail``, ``since`` or ``follow``
is a ``422``.

Each query is an ephemeral JetStream *ordered* consumer filtered to
``faas.logs.<ns>.<fn>.<instance or *>`` and starting at ``since`` (``deliver_policy`` by start
time) or at the beginning. The history is read until the consumer reports nothing pending; with
``tail`` only the last N of it are kept (read and dropped, so a ``tail`` over a long history
costs a scan of that function's lines — bounded by the stream's age and size limits). With
``follow`` the same consumer then keeps delivering. The time of each line is the JetStream
timestamp of its message. Logs of deleted functions and of replicas that are gone remain readable
until the stream ages them out.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from faasbus.bus import names
from faasbus.provider.types import valid_name

__all__ = ["LogQuery", "LogQueryError", "read_logs"]

_IDLE_CHECK_S = 1.0


class LogQueryError(ValueError):
    """A query parameter that cannot be used; answered with 422."""


@dataclass(frozen=True)
class LogQuery:
    name: str
    namespace: str
    instance: str | None
    tail: int | None
    since: datetime | None
    follow: bool

    @property
    def subject(self) -> str:
        instance = self.instance or "*"
        return f"{names.LOGS_PREFIX}.{self.namespace}.{self.name}.{instance}"

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> LogQuery:
        """Parse; an invalid name raises ``WireError`` (400), a bad value LogQueryError (422)."""
        name = valid_name(query.get("name", "").strip(), "name")
        namespace = valid_name(
            query.get("namespace", "").strip() or names.DEFAULT_NAMESPACE, "namespace"
        )
        instance_text = query.get("instance", "").strip()
        instance = valid_name(instance_text, "instance") if instance_text else None
        tail: int | None = None
        tail_text = query.get("tail", "").strip()
        if tail_text:
            try:
                tail = int(tail_text)
            except ValueError:
                raise LogQueryError(f"tail: {tail_text!r} is not a whole number") from None
            if tail <= 0:
                tail = None
        since: datetime | None = None
        since_text = query.get("since", "").strip()
        if since_text:
            try:
                since = datetime.fromisoformat(since_text.replace("z", "Z"))
            except ValueError:
                raise LogQueryError(
                    f"since: {since_text!r} is not an RFC 3339 time such as "
                    "2024-05-01T10:00:00+01:00"
                ) from None
            if since.tzinfo is None:
                raise LogQueryError(f"since: {since_text!r} needs a time zone offset (or Z)")
        follow_text = query.get("follow", "").strip().lower()
        if follow_text in ("", "false", "0", "no"):
            follow = False
        elif follow_text in ("true", "1", "yes"):
            follow = True
        else:
            raise LogQueryError(f"follow: {follow_text!r} is not true or false")
        return cls(name, namespace, instance, tail, since, follow)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _line(query: LogQuery, subject: str, data: bytes, moment: datetime) -> dict[str, Any]:
    instance = subject.rsplit(".", 1)[-1]
    return {
        "name": query.name,
        "namespace": query.namespace,
        "instance": instance,
        "timestamp": _rfc3339(moment),
        "text": data.decode(errors="replace"),
    }


async def read_logs(
    js: JetStreamContext, query: LogQuery, *, client_gone: Any = None
) -> AsyncIterator[dict[str, Any]]:
    """Yield log lines as dicts (NDJSON objects); with ``follow`` until ``client_gone()``."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME if query.since else DeliverPolicy.ALL,
        opt_start_time=query.since.astimezone(UTC) if query.since else None,
    )
    subscription = await js.subscribe(
        query.subject, stream=names.LOGS_STREAM, ordered_consumer=True, config=config
    )
    try:
        info = await subscription.consumer_info()
        # Messages may already sit in the client's queue (delivered, so no longer "pending" on
        # the server); the history ends with the message that had nothing pending behind it.
        # (the server counts what it already pushed to us in ``delivered.consumer_seq``; checking
        # only the local counter missed lines pushed between subscribe and this call).
        pushed = info.delivered.consumer_seq if info.delivered is not None else 0
        history = (info.num_pending or 0) > 0 or (pushed or 0) > 0 or subscription.delivered > 0
        kept: collections.deque[dict[str, Any]] = collections.deque(maxlen=query.tail)
        while history:
            try:
                msg = await subscription.next_msg(timeout=5.0)
            except nats.errors.TimeoutError:
                break
            line = _line(query, msg.subject, msg.data, msg.metadata.timestamp)
            history = msg.metadata.num_pending > 0
            if query.tail is None:
                yield line
            else:
                kept.append(line)
        for line in kept:
            yield line
        while query.follow:
            if client_gone is not None and client_gone():
                return
            try:
                msg = await subscription.next_msg(timeout=_IDLE_CHECK_S)
            except nats.errors.TimeoutError:
                continue
            yield _line(query, msg.subject, msg.data, msg.metadata.timestamp)
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
