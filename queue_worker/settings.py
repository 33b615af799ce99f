"""Queue worker settings, read once from the environment (OpenFaaS Pro names where they exist).

max_inflight              100     concurrent invocations per worker process
    ack_wait                  30s     lease on a message, renewed while a call runs
max_retry_attempts        10      attempts in all, the first included
initial_retry_wait        1s      first backoff
max_retry_wait            120s    backoff cap
retry_http_codes          408,429,500,502,503,504
backoff                   exponential | full | equal (jitter)
upstream_timeout          5m      one attempt's limit when calling a replica
callback_signing_secret   (none)  HMAC-SHA256 signs callbacks when set
callback_timeout          10s     one callback POST
max_callback_attempts     10      then the result is dead-lettered
max_result_bytes          1 MiB   the part of a result /system/calls/{id}/result shows
FAASBUS_CALLBACK_ALLOW_LINK_LOCAL false
FAASBUS_REPLICA_WAIT      30s     how long a call waits for a replica (scale from zero)
FAASBUS_METRICS_PORT      0       /metrics listener; 0 = none
FAASBUS_SHUTDOWN_GRACE    30s     how long in-flight calls may finish on SIGTERM
FAASBUS_RUNNING_RECORD_AFTER
                          100ms   the call record says ``running`` once a call has run this long
                                  (plus one KV round trip); a quicker call goes from ``queued``
                                  straight to its final state, one KV write fewer
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from faasbus.bus import BusSettings, Env, SettingsError

__all__ = ["BACKOFFS", "WorkerSettings", "parse_codes"]

BACKOFFS = frozenset({"exponential", "full", "equal"})


def parse_codes(name: str, text: str) -> frozenset[int]:
    try:
        codes = frozenset(int(code) for code in text.split(",") if code.strip())
    except ValueError:
        raise SettingsError(name, text, "a comma list of HTTP status codes") from None
    if any(not 100 <= code <= 599 for code in codes):
        raise SettingsError(name, text, "HTTP status codes between 100 and 599")
    return codes


@dataclass(frozen=True)
class WorkerSettings:
    bus: BusSettings
    max_inflight: int = 100
    ack_wait_s: float = 30.0
    max_retry_attempts: int = 10
    initial_retry_wait_s: float = 1.0
    max_retry_wait_s: float = 120.0
    retry_http_codes: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
    backoff: str = "exponential"
    upstream_timeout_s: float = 300.0
    callback_signing_secret: str = ""
    callback_timeout_s: float = 10.0
    max_callback_attempts: int = 10
    max_result_bytes: int = 1024 * 1024
    allow_link_local_callbacks: bool = False
    replica_wait_s: float = 30.0
    metrics_port: int = 0
    listen_host: str = "127.0.0.1"
    shutdown_grace_s: float = 30.0
    running_record_after_s: float = 0.1

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        env = Env(environ)
        d = cls(bus=BusSettings())
        codes = env.optional_text("retry_http_codes")
        return cls(
            bus=BusSettings.from_env(environ),
            max_inflight=env.integer("max_inflight", d.max_inflight, minimum=1),
            ack_wait_s=max(env.duration("ack_wait", d.ack_wait_s), 1.0),
            max_retry_attempts=env.integer("max_retry_attempts", d.max_retry_attempts, minimum=1),
            initial_retry_wait_s=env.duration("initial_retry_wait", d.initial_retry_wait_s),
            max_retry_wait_s=env.duration("max_retry_wait", d.max_retry_wait_s),
            retry_http_codes=(
                d.retry_http_codes if codes is None else parse_codes("retry_http_codes", codes)
            ),
            backoff=env.choice("backoff", d.backoff, BACKOFFS),
            upstream_timeout_s=env.duration("upstream_timeout", d.upstream_timeout_s),
            callback_signing_secret=env.text("callback_signing_secret", ""),
            callback_timeout_s=env.duration("callback_timeout", d.callback_timeout_s),
            max_callback_attempts=env.integer(
                "max_callback_attempts", d.max_callback_attempts, minimum=1
            ),
            max_result_bytes=env.integer("max_result_bytes", d.max_result_bytes, minimum=0),
            allow_link_local_callbacks=env.flag("FAASBUS_CALLBACK_ALLOW_LINK_LOCAL", default=False),
            replica_wait_s=env.duration("FAASBUS_REPLICA_WAIT", d.replica_wait_s),
            metrics_port=env.integer("FAASBUS_METRICS_PORT", 0, minimum=0),
            listen_host=env.text("FAASBUS_LISTEN_HOST", d.listen_host),
            shutdown_grace_s=env.duration("FAASBUS_SHUTDOWN_GRACE", d.shutdown_grace_s),
            running_record_after_s=env.duration(
                "FAASBUS_RUNNING_RECORD_AFTER", d.running_record_after_s
            ),
        )
