"""Requests in progress, as a server reports them in Prometheus text: the one place that sums
samples of Prometheus text. The balancer's load scrape reads vLLM's running and waiting
requests; the harness, waiting for a stack to drain, also reads the balancer's own in-flight
gauge, and after a trial its retries."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

# vLLM's requests being generated and those queued, per replica.
ENGINE_LOAD_METRICS = frozenset({"vllm:num_requests_running", "vllm:num_requests_waiting"})
# Our balancer's requests in flight to its replicas.
BALANCER_LOAD_METRICS = frozenset({"balancer_inflight_requests"})


def sum_samples(metrics_text: str, names: frozenset[str]) -> float | None:
    """The sum of every sample named in `names`, over all its series (one per model or
    replica); None when the text holds none of them."""
    samples = [sample.value for family in text_string_to_metric_families(metrics_text)
               for sample in family.samples if sample.name in names]
    return float(sum(samples)) if samples else None


def requests_in_progress(metrics_text: str, names: frozenset[str]) -> int | None:
    total = sum_samples(metrics_text, names)
    return None if total is None else int(total)
