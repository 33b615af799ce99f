"""Retry decisions as types (STYLE.md): what to do after one attempt, decided in one place.

An attempt ends in :class:`Outcome`; :func:`decide` maps it to :class:`Done`, :class:`Retry` with
a delay, or :class:`Dead`. Only the dispatcher turns those into JetStream acks (``ack``,
``nak(delay)``, ``term``). Rules (REFERENCE.md section 3):

- a status in the retry codes is retried; so is any error marked ``X-OpenFaaS-Internal`` (the
  platform failed, not the function) and any failure to reach a replica;
- ``Retry-After`` on 429/503 (seconds or an HTTP date) replaces the backoff for that retry;
- backoff ``exponential`` = min(max, initial * 2^(attempt-1)); ``full`` jitter = random(0, that);
  ``equal`` jitter = that/2 + random(0, that/2) (AWS architecture blog's names);
- after ``attempts`` attempts a retryable outcome is dead;
- per-function annotations override: ``com.openfaas.retry.attempts``, ``.codes``, ``.min_wait``,
  ``.max_wait``.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from faasbus.bus import SettingsError, parse_duration
from faasbus.queue_worker.settings import WorkerSettings, parse_codes

__all__ = ["Dead", "Decision", "Done", "Outcome", "Retry", "RetryPolicy", "decide"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended. ``status`` 0 means no HTTP answer (see ``error``)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    duration_s: float
    error: str = ""
    internal: bool = False  # X-OpenFaaS-Internal, or the worker could not reach a replica
    not_found: bool = False  # no such function: never retried

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Done:
    """Final: the function answered (2xx, or an error that is not retried)."""


@dataclass(frozen=True)
class Retry:
    delay_s: float


@dataclass(frozen=True)
class Dead:
    reason: str


Decision = Done | Retry | Dead


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    codes: frozenset[int]
    min_wait_s: float
    max_wait_s: float
    backoff: str

    @classmethod
    def for_function(
        cls, settings: WorkerSettings, annotations: Mapping[str, str], *, function: str = ""
    ) -> RetryPolicy:
        policy = cls(
            attempts=settings.max_retry_attempts,
            codes=settings.retry_http_codes,
            min_wait_s=settings.initial_retry_wait_s,
            max_wait_s=settings.max_retry_wait_s,
            backoff=settings.backoff,
        )
        try:
            return policy._with_annotations(annotations)
        except (SettingsError, ValueError) as exc:
            log.warning("retry_annotation_invalid", function=function, error=str(exc))
            return policy

    def _with_annotations(self, annotations: Mapping[str, str]) -> RetryPolicy:
        attempts, codes = self.attempts, self.codes
        min_wait, max_wait = self.min_wait_s, self.max_wait_s
        if value := annotations.get("com.openfaas.retry.attempts"):
            attempts = max(1, int(value))
        if value := annotations.get("com.openfaas.retry.codes"):
            codes = parse_codes("com.openfaas.retry.codes", value)
        if value := annotations.get("com.openfaas.retry.min_wait"):
            min_wait = parse_duration(value)
        if value := annotations.get("com.openfaas.retry.max_wait"):
            max_wait = parse_duration(value)
        return RetryPolicy(attempts, codes, min_wait, max(max_wait, min_wait), self.backoff)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_wait_s, self.min_wait_s * 2.0 ** max(attempt - 1, 0))
        if self.backoff == "full":
            return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography
        if self.backoff == "equal":
            return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311
        return ceiling


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), if present."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def decide(outcome: Outcome, attempt: int, policy: RetryPolicy) -> Decision:
    """What to do after ``attempt`` (1-based) ended in ``outcome``."""
    if outcome.not_found:
        return Dead("function not found")
    retryable = outcome.internal or outcome.status in policy.codes
    if outcome.ok or not retryable:
        return Done()
    if attempt >= policy.attempts:
        what = outcome.error or f"status {outcome.status}"
        return Dead(f"{what} after {attempt} attempts")
    delay = policy.delay(attempt)
    if outcome.status in (429, 503):
        hinted = retry_after(outcome.headers)
        if hinted is not None:
            delay = hinted
    return Retry(delay)
