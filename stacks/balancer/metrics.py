"""Prometheus metrics of one balancer process, on its own registry.

Label children are cached per (replica, status) so the data path does one dict lookup and one
increment per request, not a label resolution.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Upstream latency of LLM calls runs from milliseconds (a /v1/models call) to minutes (a long
# generation): buckets cover both ends.
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)


class BalancerMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "balancer_requests",
            "Requests answered, by replica that served and HTTP status sent to the client.",
            ["replica", "status"],
            registry=self.registry,
        )
        self._inflight = Gauge(
            "balancer_inflight_requests",
            "Requests sent to a replica and not yet answered.",
            ["replica"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "balancer_upstream_latency_seconds",
            "Time from picking a replica to the end of its answer.",
            ["replica"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._healthy = Gauge(
            "balancer_replica_healthy",
            "1 while a replica receives traffic, 0 while it is ejected, pending or draining.",
            ["replica"],
            registry=self.registry,
        )
        self._ejections = Counter(
            "balancer_ejections",
            "Times a replica was ejected, by reason (health: failed probes; refused: a refused "
            "connection; outlier: failed attempts in a row).",
            ["replica", "reason"],
            registry=self.registry,
        )
        self._retries = Counter(
            "balancer_retries",
            "Requests sent again to another replica, by the replica that failed them.",
            ["replica"],
            registry=self.registry,
        )
        self._retries_refused = Counter(
            "balancer_retries_refused",
            "Retries not made because the retry budget was spent.",
            registry=self.registry,
        )
        self._admission_refused = Counter(
            "balancer_admission_refused",
            "Requests answered 503 with Retry-After by admission control.",
            registry=self.registry,
        )
        self._external = Gauge(
            "balancer_replica_external_load",
            "Requests a replica last reported running or waiting beyond this balancer's.",
            ["replica"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._inflight_children: dict[str, Gauge] = {}
        self._latency_children: dict[str, Histogram] = {}

    def add_replica(self, replica: str, serving: bool = True) -> None:
        self._inflight_children[replica] = self._inflight.labels(replica=replica)
        self._latency_children[replica] = self._latency.labels(replica=replica)
        self._inflight_children[replica].set(0)
        self._healthy.labels(replica=replica).set(1 if serving else 0)
        self._external.labels(replica=replica).set(0)

    def remove_replica(self, replica: str) -> None:
        """A replica gone from the table: its gauges go (they would report a stale state);
        its counters and latencies stay, they are history."""
        self._inflight_children.pop(replica, None)
        for gauge in (self._inflight, self._healthy, self._external):
            with contextlib.suppress(KeyError):
                gauge.remove(replica)

    def set_healthy(self, replica: str, healthy: bool) -> None:
        self._healthy.labels(replica=replica).set(1 if healthy else 0)

    def ejected(self, replica: str, reason: str) -> None:
        self._ejections.labels(replica=replica, reason=reason).inc()

    def retried(self, replica: str) -> None:
        self._retries.labels(replica=replica).inc()

    def retry_refused(self) -> None:
        self._retries_refused.inc()

    def admission_refused(self) -> None:
        self._admission_refused.inc()

    def set_external(self, replica: str, load: int) -> None:
        self._external.labels(replica=replica).set(load)

    def set_inflight(self, replica: str, count: int) -> None:
        self._inflight_children[replica].set(count)

    def observe(self, replica: str, status: int, latency_s: float | None) -> None:
        key = (replica, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._requests.labels(replica=replica, status=str(status))
            self._request_children[key] = child
        child.inc()
        if latency_s is not None:
            self._latency_children[replica].observe(latency_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
