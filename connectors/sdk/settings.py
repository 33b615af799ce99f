"""Settings every connector shares (OpenFaaS connector names where OpenFaaS has one).

Each connector's own settings dataclass carries one of these as ``common`` and reads it with
:meth:`ConnectorSettings.from_env`, so every connector accepts the same variables:

    topics                     (none)   the topics this connector listens to (its meaning is the
                                        source's: NATS subjects, Kafka topics); comma list
    content_type               text/plain  Content-Type of invocations whose event has none
    print_response             false    log each function's outcome once its call is final
    print_response_body        false    ... and its response body (first 1 KiB)
    upstream_timeout           30s      how long a connector waits for a function's result
                                        (print_response, NATS request/reply response mode)
    rebuild_interval           30s      full resync of the topic map (a watch keeps it current
                                        in between: changes apply within a second)
    asynchronous_invocation    true     accepted for compatibility; always true in faasbus:
                                        every invocation goes through the bus
    FAASBUS_METRICS_PORT       0        /metrics listener (Prometheus); 0 = none
    FAASBUS_LISTEN_HOST        127.0.0.1
    FAASBUS_CONNECTOR_RECORD_CALLS  true  write a ``queued`` call record for each invocation
    FAASBUS_PUBLISH_TIMEOUT    5s       one publish attempt's wait for JetStream's ack
    FAASBUS_PUBLISH_RETRY_MIN  100ms    first back-off after a failed publish ...
    FAASBUS_PUBLISH_RETRY_MAX  5s       ... doubling up to this; publishing never gives up
    FAASBUS_CONNECTOR_MAX_INFLIGHT 256  events a connector hands off concurrently
    FAASBUS_SHUTDOWN_GRACE     10s      how long in-flight hand-offs may finish on SIGTERM

plus the bus settings (``FAASBUS_NATS_URL``, ... see :class:`faasbus.bus.BusSettings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, Self

from faasbus.bus import BusSettings, Env

__all__ = ["ConnectorSettings", "HasCommonSettings"]


@dataclass(frozen=True)
class ConnectorSettings:
    bus: BusSettings = field(default_factory=BusSettings)
    topics: tuple[str, ...] = ()
    content_type: str = "text/plain"
    print_response: bool = False
    print_response_body: bool = False
    upstream_timeout_s: float = 30.0
    rebuild_interval_s: float = 30.0
    asynchronous_invocation: bool = True
    metrics_port: int = 0
    listen_host: str = "127.0.0.1"
    record_calls: bool = True
    publish_timeout_s: float = 5.0
    publish_retry_min_s: float = 0.1
    publish_retry_max_s: float = 5.0
    max_inflight: int = 256
    shutdown_grace_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        env = Env(environ)
        d = cls()
        return cls(
            bus=BusSettings.from_env(environ),
            topics=env.csv("topics"),
            content_type=env.text("content_type", d.content_type),
            print_response=env.flag("print_response", d.print_response),
            print_response_body=env.flag("print_response_body", d.print_response_body),
            upstream_timeout_s=env.duration("upstream_timeout", d.upstream_timeout_s),
            rebuild_interval_s=max(env.duration("rebuild_interval", d.rebuild_interval_s), 1.0),
            asynchronous_invocation=env.flag("asynchronous_invocation", default=True),
            metrics_port=env.integer("FAASBUS_METRICS_PORT", 0, minimum=0),
            listen_host=env.text("FAASBUS_LISTEN_HOST", d.listen_host),
            record_calls=env.flag("FAASBUS_CONNECTOR_RECORD_CALLS", d.record_calls),
            publish_timeout_s=max(env.duration("FAASBUS_PUBLISH_TIMEOUT", 5.0), 0.1),
            publish_retry_min_s=max(env.duration("FAASBUS_PUBLISH_RETRY_MIN", 0.1), 0.01),
            publish_retry_max_s=max(env.duration("FAASBUS_PUBLISH_RETRY_MAX", 5.0), 0.01),
            max_inflight=env.integer("FAASBUS_CONNECTOR_MAX_INFLIGHT", d.max_inflight, minimum=1),
            shutdown_grace_s=env.duration("FAASBUS_SHUTDOWN_GRACE", d.shutdown_grace_s),
        )


class HasCommonSettings(Protocol):
    """A connector's settings: its own fields plus the shared ones as ``common``."""

    @property
    def common(self) -> ConnectorSettings: ...
