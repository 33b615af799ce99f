"""The gateway's Prometheus metrics, with OpenFaaS's names and labels (REFERENCE.md section 7).

    gateway_functions_seconds             histogram  function_name, code
    gateway_function_invocation_total     counter    function_name, code
    gateway_function_invocation_started   untyped    function_name
    gateway_service_count                 gauge      function_name (ready replicas)

``function_name`` is ``name.namespace``. The hot path only bumps plain integers on a per-function
:class:`FunctionStats` (no label lookup, no lock: the gateway is one event loop); a custom collector
turns them into metric families when ``/metrics`` is scraped, through a registry this object owns
(no module-level registry). The same counts fill ``invocationCount`` in ``GET /system/functions``.

``gateway_function_invocation_started`` is exposed untyped: prometheus-client would append
``_total`` to a counter's name, and dashboards built for OpenFaaS query the bare name.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["BUCKETS_S", "FunctionStats", "GatewayMetrics"]

# The Go client's default buckets, which the OpenFaaS gateway's histogram uses.
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BUCKET_LABELS = (*(repr(b) for b in BUCKETS_S), "+Inf")


class _CodeStats:
    __slots__ = ("buckets", "count", "total_s")

    def __init__(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self.buckets = [0] * (len(BUCKETS_S) + 1)


class FunctionStats:
    """Invocation counts of one function, by status code."""

    __slots__ = ("codes", "label", "started")

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = 0
        self.codes: dict[int, _CodeStats] = {}

    def observe(self, code: int, seconds: float) -> None:
        stats = self.codes.get(code)
        if stats is None:
            stats = self.codes[code] = _CodeStats()
        stats.count += 1
        stats.total_s += seconds
        stats.buckets[bisect.bisect_left(BUCKETS_S, seconds)] += 1

    @property
    def invocations(self) -> int:
        return sum(stats.count for stats in self.codes.values())


class GatewayMetrics:
    """Per-function counters and their exposition; ``services`` gives ready replicas at scrape."""

    def __init__(self, services: Callable[[], Mapping[tuple[str, str], int]] | None = None) -> None:
        self._functions: dict[tuple[str, str], FunctionStats] = {}
        self._services = services
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def set_services(self, services: Callable[[], Mapping[tuple[str, str], int]] | None) -> None:
        self._services = services

    def function(self, namespace: str, name: str) -> FunctionStats:
        key = (namespace, name)
        stats = self._functions.get(key)
        if stats is None:
            stats = self._functions[key] = FunctionStats(f"{name}.{namespace}")
        return stats

    def invocations(self, namespace: str, name: str) -> int:
        stats = self._functions.get((namespace, name))
        return 0 if stats is None else stats.invocations

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def families(self) -> Iterator[Metric]:
        seconds = HistogramMetricFamily(
            "gateway_functions_seconds",
            "Function time taken",
            labels=["function_name", "code"],
        )
        total = CounterMetricFamily(
            "gateway_function_invocation",
            "Function metrics",
            labels=["function_name", "code"],
        )
        started = Metric(
            "gateway_function_invocation_started", "Function invocations started", "unknown"
        )
        for stats in list(self._functions.values()):
            started.add_sample(
                "gateway_function_invocation_started", {"function_name": stats.label}, stats.started
            )
            for code, code_stats in sorted(stats.codes.items()):
                labels = [stats.label, str(code)]
                cumulative = 0
                buckets: list[tuple[str, float]] = []
                for bound, count in zip(_BUCKET_LABELS, code_stats.buckets, strict=True):
                    cumulative += count
                    buckets.append((bound, cumulative))
                seconds.add_metric(labels, buckets, code_stats.total_s)
                total.add_metric(labels, code_stats.count)
        yield seconds
        yield total
        yield started
        if self._services is not None:
            service_count = GaugeMetricFamily(
                "gateway_service_count", "Service replicas", labels=["function_name"]
            )
            for (namespace, name), replicas in sorted(self._services().items()):
                service_count.add_metric([f"{name}.{namespace}"], replicas)
            yield service_count


class _Collector(Collector):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()
