"""The scaling report of a run whose scenario scales, as typed results (part of
`harness.report.results`; computed by `harness.measure.scaling`)."""

from __future__ import annotations

from pydantic import Field

from harness.report.result_base import Figure, Result


class Scaling(Result):
    """How one stack's fleet followed the load, over its trials."""

    policy: str = Field(description="its autoscaling policy (static, symmetric, asymmetric)")
    slo_violating_s: Figure = Field(description="seconds of the window whose P99 was over "
                                                "the SLO or with a failure, mean over trials")
    latency_p99_peak_s: Figure = Field(description="end-to-end P99 of requests scheduled in "
                                                   "the spikes (upper half of the rate), s")
    peak_requests: int = Field(description="successes that P99 was taken over")
    replica_seconds: Figure = Field(description="∫ replicas (ready, starting, draining) dt "
                                                "over the window, mean over trials: the cost")
    scale_ups: float = Field(description="steps up per trial")
    scale_downs: float = Field(description="steps down per trial")
    cold_starts: float = Field(description="replicas started and joined, per trial")
    cold_start_s_median: Figure = Field(description="spawn → joined the balancer, s")
    cold_start_s_max: Figure = Field(description="the slowest of those, s")
    failed_by_scaling: int = Field(description="failures while a replica was drained or "
                                               "stopped, on it or on none known (must be 0)")


class ScalingAblation(Result):
    """`--ablate-scaling`: the stack's own policy against the others, on one schedule."""

    stack: str = Field(description="the stack studied, with its own policy")
    policy: str = Field(description="that policy")
    variants: dict[str, str] = Field(description="policy → the variant stack running it")
    ratios: dict[str, dict[str, Figure]] = Field(
        description="policy → the studied stack's slo_violating_s, replica_seconds and "
                    "latency_p99_peak_s ÷ the variant's (below 1: the studied one has less)")
