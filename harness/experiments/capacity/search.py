"""Capacity at SLO: the search for the highest arrival rate a stack sustains within its latency
and success targets.

The search is a pure function of a `probe(rate) -> Probe` callable (one fixed-duration
open-loop run at that rate), so it is tested on synthetic stacks and driven by real runs alike:

1. probe `start_qps`; if it fails, divide the rate by `growth` until a probe passes, down to
   `min_qps`; if even that fails, the stack has no capacity at this SLO — reported as such,
   never as 0 or a guess;
2. from a passing start, multiply the rate by `growth` until a probe fails (or `max_qps` is
   passed: the capacity is then only known to be at least the last rate);
3. bisect between the last passing and the first failing rate until they are within
   `tolerance` of each other (relative); the capacity is the highest passing rate.

A later trial of the same stack may start from a `hint`, the capacity an earlier trial found:
it probes the hint, then steps away from it in the direction its verdict points, by
(1 + tolerance) first and by a step that squares each time, up to `growth` (galloping), until
the verdict flips; then it bisects as above. Where the capacity has not moved, this brackets
it to the tolerance in two or three probes instead of the eight or so a search from
`start_qps` takes, so the same time buys a finer tolerance; where it has moved, the steps grow
until they reach it. The hint only chooses which rates are probed: each verdict is still its
own probe's.

Rates are rounded to three significant digits, so two stacks searching the same range probe
the same rates (and replay the same schedules).

A rate passes when the scheduled-time P99 is within the SLO and the success rate meets the
target. How sure a capacity is, over trials, is `harness.experiments.capacity.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

RATE_DIGITS = 3  # significant digits of a probed rate
SLO_QUANTILE = 0.99


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
    min_qps: float | None = None  # the floor of a search whose start fails; start ÷ growth²
    growth: float = 2.0
    tolerance: float = 0.05
    max_qps: float = 100_000.0
    max_probes: int = 30

    def __post_init__(self) -> None:
        if self.start_qps <= 0 or self.growth <= 1 or not 0 < self.tolerance < 1:
            raise ValueError("capacity search needs start_qps > 0, growth > 1 and "
                             f"0 < tolerance < 1; got {self}")
        if self.min_qps is not None and not 0 < self.min_qps <= self.start_qps:
            raise ValueError(f"min_qps ({self.min_qps:g}) must lie in (0, start_qps]")

    @property
    def floor_qps(self) -> float:
        """The lowest rate a search probes."""
        return round_rate(self.min_qps if self.min_qps is not None
                          else self.start_qps / self.growth ** 2)


@dataclass(slots=True)
class SearchResult:
    capacity_qps: float | None  # None: failed at the lowest rate probed
    probes: list[Probe] = field(default_factory=list)
    failing_qps: float | None = None  # the lowest failing rate seen (None: never failed)

    @property
    def failed_at_lowest(self) -> bool:
        return self.capacity_qps is None

    def resolved(self, tolerance: float) -> bool:
        """Whether the bracket closed to the tolerance (False: max_qps or max_probes ended
        the search first, and the capacity is a lower bound)."""
        return (self.capacity_qps is not None and self.failing_qps is not None
                and (self.failing_qps - self.capacity_qps) / self.capacity_qps
                <= tolerance + 1e-9)


def round_rate(rate: float) -> float:
    """A rate to `RATE_DIGITS` significant digits."""
    return float(f"{rate:.{RATE_DIGITS}g}")


def passes(latency_p99_s: float, success_rate: float, slo_p99_s: float,
           min_success: float) -> bool:
    """The SLO test of one probe; a probe with no successful request has no P99 and fails."""
    return (not math.isnan(latency_p99_s) and latency_p99_s <= slo_p99_s
            and success_rate >= min_success)


def certain_failure(requests: int, failed: int, late: int, min_success: float) -> bool:
    """Whether a probe has already failed, whatever its unfinished requests do.

    `requests` are scheduled in the measured window; of those finished so far, `failed`
    failed and `late` succeeded beyond the SLO. Success can only fall below the target once
    more than (1 - target) of them failed. P99 (linear interpolation over n successes) lies
    within the SLO only if at most ceil(0.01 (n - 1)) successes exceed it, so more late ones
    than that, for the largest n possible, fail it for every n."""
    if requests <= 0:
        return False
    success_at_best = (requests - failed) / requests
    late_allowed = math.ceil(round((1 - SLO_QUANTILE) * (requests - 1), 9))
    return success_at_best < min_success or late > late_allowed


def find_capacity(probe: Callable[[float], Probe], config: SearchConfig,
                  hint: float | None = None) -> SearchResult:
    """The search from `config.start_qps`, or from `hint` (see the module's docstring)."""
    result = SearchResult(capacity_qps=None)

    def run(rate: float) -> bool:
        outcome = probe(rate)
        result.probes.append(outcome)
        if outcome.passed:
            result.capacity_qps = max(result.capacity_qps or 0.0, outcome.rate_qps)
        else:
            result.failing_qps = min(result.failing_qps or math.inf, outcome.rate_qps)
        return outcome.passed

    bracketed = (_gallop(run, hint, config, result) if hint is not None
                 else _double(run, config, result))
    if bracketed:
        _bisect(run, config, result)
    return result


def _double(run: Callable[[float], bool], config: SearchConfig, result: SearchResult) -> bool:
    """Down from the start by `growth` until a rate passes, then up by `growth` until one
    fails. False where the floor failed (no capacity)."""
    rate = round_rate(config.start_qps)
    passed = run(rate)
    while not passed:  # too high a start: down until a rate passes, or the floor failed
        lower = max(round_rate(rate / config.growth), config.floor_qps)
        if lower >= rate or len(result.probes) >= config.max_probes:
            return False
        rate = lower
        passed = run(rate)
    came_down = result.failing_qps is not None  # then the bracket is known already
    while not came_down and len(result.probes) < config.max_probes:
        rate = round_rate(rate * config.growth)
        if rate > config.max_qps or not run(rate):
            break
    return True


def _gallop(run: Callable[[float], bool], hint: float, config: SearchConfig,
            result: SearchResult) -> bool:
    """From the hint, away in the direction of its verdict by a step of (1 + tolerance) that
    squares after each probe, up to `growth`, until the verdict flips, the floor fails or
    `max_qps` is passed. False where the floor failed (no capacity)."""
    rate = min(max(round_rate(hint), config.floor_qps), config.max_qps)
    passed = run(rate)
    step = min(1 + config.tolerance, config.growth)
    while len(result.probes) < config.max_probes:
        nearer = round_rate(rate * step if passed else rate / step)
        step = min(step * step, config.growth)  # no wider a bracket than from the start
        if nearer == rate:  # a step finer than rates are written: the next rate written
            nearer = _next_rate(rate, up=passed)
        if passed and nearer > config.max_qps:
            return True  # a lower bound: the bisection has no failing rate to close on
        if not passed:
            if rate <= config.floor_qps:
                return False  # the floor failed
            nearer = max(nearer, config.floor_qps)
        rate = nearer
        if run(rate) != passed:
            return True
    return result.capacity_qps is not None


def _next_rate(rate: float, up: bool) -> float:
    """The rate written next to `rate`, above or below it (below 1000 comes 999, not 990)."""
    below = rate * (1 - 1e-9) if not up else rate  # the decade the next rate down lies in
    unit = 10 ** (math.floor(math.log10(below)) - RATE_DIGITS + 1)
    return round_rate(rate + unit if up else rate - unit)


def _bisect(run: Callable[[float], bool], config: SearchConfig, result: SearchResult) -> None:
    """Between the highest passing and the lowest failing rate, until the bracket is within
    the tolerance (or as narrow as rates are written)."""
    while (result.failing_qps is not None and result.capacity_qps is not None
           and len(result.probes) < config.max_probes
           and not result.resolved(config.tolerance)):
        middle = round_rate((result.capacity_qps + result.failing_qps) / 2)
        if middle in (result.capacity_qps, result.failing_qps):
            break  # the bracket is as narrow as rates are written
        run(middle)
