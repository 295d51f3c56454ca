"""A capacity run's typed summary from what it measured: each probe judged from its records,
each stack's capacity over its searches, and the ratios. Pure functions of records and search
results, so a saved run's records give the same summary anywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.experiments.capacity.search import SearchConfig, SearchResult, passes
from harness.experiments.capacity.stats import capacity_ratio, stack_capacity
from harness.measure.metrics import Window, in_flight, summarize
from harness.report.results import CapacityAblation, CapacitySummary, ProbeRow

PROBE_FIGURES = ("requests", "ok_requests", "failed_requests", "success_rate", "offered_qps",
                 "throughput_qps", "goodput_qps", "latency_p50_s", "latency_p90_s",
                 "latency_p99_s", "latency_over_slo", "latency_over_slo_allowed",
                 "service_p99_s", "send_lag_p99_s", "errors")


@dataclass(frozen=True, slots=True)
class Judging:
    """How every probe of a run is judged."""

    window: Window
    slo_p99_s: float
    min_success: float
    stream: bool


def judge_probe(frame: pd.DataFrame, judging: Judging, stopped: str | None,
                **identity: Any) -> ProbeRow:
    """A probe's row from its records: its figures, and whether it passed (a probe stopped
    early failed). `identity`: trial, probe, rate_qps, drained_s, schedule_sha256, schedule,
    records."""
    figures = summarize(frame, judging.window, judging.slo_p99_s, judging.stream)
    passed = stopped is None and passes(figures["latency_p99_s"], figures["success_rate"],
                                        judging.slo_p99_s, judging.min_success)
    return ProbeRow.model_validate({**identity, "passed": passed, "stopped_early": stopped,
                                    **{key: figures[key] for key in PROBE_FIGURES},
                                    "concurrency": in_flight(figures)})


def concurrency_per_replica(probes: list[ProbeRow], replicas: int | None) -> float | None:
    """Per trial, the highest passing probe's requests in flight; their mean ÷ replicas."""
    at_capacity = []
    for trial in sorted({probe.trial for probe in probes}):
        passing = [p for p in probes if p.trial == trial and p.passed and p.concurrency]
        if passing:
            at_capacity.append(max(passing, key=lambda p: p.rate_qps).concurrency or 0.0)
    if not at_capacity or not replicas:
        return None
    return sum(at_capacity) / len(at_capacity) / replicas


@dataclass(frozen=True, slots=True)
class Searched:
    """What a capacity run measured of one stack so far."""

    replicas: int | None
    results: list[SearchResult]
    probes: list[ProbeRow]


def capacity_summary(header: dict[str, Any], judging: Judging, search: SearchConfig,
                     searched: dict[str, Searched],
                     ablation: tuple[str, dict[str, str]] | None) -> CapacitySummary:
    """`header`: run, workload, search (its settings as the run took them), trials; the first
    stack of `searched` is the baseline."""
    baseline = next(iter(searched))
    stacks = {name: stack_capacity(stack.results, search, stack.replicas).model_copy(
        update={"probes": stack.probes, "concurrency_per_replica": concurrency_per_replica(
            stack.probes, stack.replicas)})
        for name, stack in searched.items() if stack.results}
    ratios = {name: capacity_ratio(name, row, baseline, stacks[baseline])
              for name, row in stacks.items() if name != baseline and baseline in stacks}
    summary = CapacitySummary.model_validate({
        "kind": "capacity", **header,
        "slo": {"p99_s": judging.slo_p99_s, "min_success": judging.min_success},
        "window": {"start_s": judging.window.start_s, "length_s": judging.window.length_s},
        "baseline": baseline, "stacks": stacks,
        "ratio": next(iter(ratios.values()), None), "ratios": ratios})
    if ablation is not None:
        studied, variant_names = ablation
        summary.ablation = CapacityAblation.model_validate({
            "stack": studied, "variants": variant_names,
            "contributions": {optimization: capacity_ratio(studied, stacks[studied], variant,
                                                           stacks[variant])
                              for optimization, variant in variant_names.items()
                              if studied in stacks and variant in stacks}})
    return summary
