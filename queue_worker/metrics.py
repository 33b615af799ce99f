"""Queue worker metrics: OpenFaaS Pro names, plus faasbus's own with the ``faasbus_`` prefix."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["WorkerMetrics"]


class WorkerMetrics:
    """One registry per worker process (no module globals)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["function_name"]
        self.submitted = Counter(
            "queue_worker_messages_submitted", "Invocations taken from the queue",
            labels, registry=self.registry,
        )  # fmt: skip
        self.processed = Counter(
            "queue_worker_messages_processed", "Invocations finished (final outcome)",
            [*labels, "code"], registry=self.registry,
        )  # fmt: skip
        self.pending = Gauge(
            "queue_worker_pending_messages", "Invocations waiting in FAAS_INVOKE",
            labels, registry=self.registry,
        )  # fmt: skip
        self.inflight = Gauge(
            "queue_worker_function_invocation_inflight", "Invocations running now",
            labels, registry=self.registry,
        )  # fmt: skip
        self.retries = Counter(
            "faasbus_queue_worker_retries", "Attempts scheduled again", labels,
            registry=self.registry,
        )  # fmt: skip
        self.dead = Counter(
            "faasbus_queue_worker_dead_letters", "Invocations sent to FAAS_DLQ",
            [*labels, "kind"], registry=self.registry,
        )  # fmt: skip
        self.callbacks = Counter(
            "faasbus_queue_worker_callbacks", "Callback POSTs by result",
            [*labels, "result"], registry=self.registry,
        )  # fmt: skip
