"""Capacity at SLO: the highest arrival rate a stack sustains within its latency and success
targets, and how sure we are of it.

The search is a pure function of a `probe(rate) -> Probe` callable (one fixed-duration
open-loop run at that rate), so it is tested on synthetic stacks and driven by real runs alike:

1. probe `start_qps`; if even that fails, the stack has no capacity at this SLO — reported as
   such, never as 0 or a guess;
2. multiply the rate by `growth` until a probe fails (or `max_qps` is passed);
3. bisect between the last passing and the first failing rate until they are within
   `tolerance` of each other (relative); the capacity is the highest passing rate.

A rate passes when the scheduled-time P99 is within the SLO and the success rate meets the
target. Over K interleaved trials, a stack's capacity is the mean with a Student-t 95 %
interval; the ratio of two stacks gets a paired percentile bootstrap interval (trials paired by
index, since interleaved trials share the machine's moods).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True, slots=True)
class Probe:
    rate_qps: float
    passed: bool
    latency_p99_s: float
    success_rate: float
    throughput_qps: float


@dataclass(frozen=True, slots=True)
class SearchConfig:
    start_qps: float = 1.0
    growth: float = 2.0
    tolerance: float = 0.05
    max_qps: float = 100_000.0
    max_probes: int = 30

    def __post_init__(self) -> None:
        if self.start_qps <= 0 or self.growth <= 1 or not 0 < self.tolerance < 1:
            raise ValueError("capacity search needs start_qps > 0, growth > 1 and "
                             f"0 < tolerance < 1; got {self}")


@dataclass(slots=True)
class SearchResult:
    capacity_qps: float | None  # None: failed at the lowest rate probed
    probes: list[Probe] = field(default_factory=list)
    failing_qps: float | None = None  # the lowest failing rate seen (None: never failed)

    @property
    def failed_at_lowest(self) -> bool:
        return self.capacity_qps is None


def passes(latency_p99_s: float, success_rate: float, slo_p99_s: float,
           min_success: float) -> bool:
    """The SLO test of one probe; a probe with no successful request has no P99 and fails."""
    return (not math.isnan(latency_p99_s) and latency_p99_s <= slo_p99_s
            and success_rate >= min_success)


def find_capacity(probe: Callable[[float], Probe], config: SearchConfig) -> SearchResult:
    result = SearchResult(capacity_qps=None)

    def run(rate: float) -> bool:
        outcome = probe(rate)
        result.probes.append(outcome)
        if outcome.passed:
            result.capacity_qps = max(result.capacity_qps or 0.0, rate)
        else:
            result.failing_qps = min(result.failing_qps or math.inf, rate)
        return outcome.passed

    if not run(config.start_qps):
        return result
    rate = config.start_qps
    while len(result.probes) < config.max_probes:
        rate *= config.growth
        if rate > config.max_qps or not run(rate):
            break
    while (result.failing_qps is not None and result.capacity_qps is not None
           and len(result.probes) < config.max_probes
           and (result.failing_qps - result.capacity_qps) / result.capacity_qps
           > config.tolerance):
        run((result.capacity_qps + result.failing_qps) / 2)
    return result


@dataclass(frozen=True, slots=True)
class Interval:
    value: float
    low: float
    high: float
    method: str

    @property
    def width(self) -> float:
        return self.high - self.low


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean of the trials' capacities with a two-sided Student-t interval (NaN bounds with a
    single trial: one measurement gives no interval)."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if array.size < 2:
        return Interval(mean, math.nan, math.nan, "one trial: no interval")
    half = float(stats.t.ppf((1 + CONFIDENCE) / 2, array.size - 1)
                 * array.std(ddof=1) / math.sqrt(array.size))
    return Interval(mean, mean - half, mean + half, f"Student t, {CONFIDENCE:.0%}")


def ratio_interval(stack: Sequence[float], baseline: Sequence[float],
                   seed: int = 0) -> Interval:
    """mean(stack) ÷ mean(baseline), with a paired percentile bootstrap interval."""
    a, b = np.asarray(stack, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.size != b.size or a.size == 0:
        raise ValueError("the ratio needs the same number of trials for both stacks")
    value = float(a.mean() / b.mean())
    if a.size < 2:
        return Interval(value, math.nan, math.nan, "one trial: no interval")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, a.size, size=(BOOTSTRAP_RESAMPLES, a.size))
    ratios = a[picks].mean(axis=1) / b[picks].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return Interval(value, float(low), float(high),
                    f"paired percentile bootstrap, {BOOTSTRAP_RESAMPLES:,} resamples, "
                    f"{CONFIDENCE:.0%}")


def verdict(ratio: Interval, stack: str, baseline: str) -> str:
    """Who wins, or that the interval is too wide to say."""
    if math.isnan(ratio.low):
        return (f"{stack} ÷ {baseline} = {ratio.value:.2f}× from one trial: run --trials 3 "
                "or more for an interval")
    if ratio.low > 1:
        return f"{stack} serves more than {baseline}: {ratio.value:.2f}× " \
               f"[{ratio.low:.2f}, {ratio.high:.2f}]"
    if ratio.high < 1:
        return f"{baseline} serves more than {stack}: {stack} ÷ {baseline} = " \
               f"{ratio.value:.2f}× [{ratio.low:.2f}, {ratio.high:.2f}]"
    return (f"too close to call: {stack} ÷ {baseline} = {ratio.value:.2f}× and its interval "
            f"[{ratio.low:.2f}, {ratio.high:.2f}] includes 1")
