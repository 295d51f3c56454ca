"""The capacity search on synthetic stacks, and its intervals."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from harness.capacity import (
    Probe,
    SearchConfig,
    find_capacity,
    mean_interval,
    passes,
    ratio_interval,
    verdict,
)

SLO_S = 1.0


def synthetic_stack(breaks_at_qps: float) -> tuple[list[float], Callable[[float], Probe]]:
    """A stack whose P99 grows with load and crosses the SLO exactly at `breaks_at_qps`."""
    probed: list[float] = []

    def probe(rate: float) -> Probe:
        probed.append(rate)
        p99 = 0.2 + 0.8 * (rate / breaks_at_qps) ** 3  # 1.0 s at the break
        return Probe(rate, passes(p99, 1.0, SLO_S, 0.9999), p99, 1.0, rate)

    return probed, probe


@pytest.mark.parametrize("breaks_at", [3.3, 37.0, 812.0])
def test_bisection_finds_the_break_within_tolerance(breaks_at: float) -> None:
    probed, probe = synthetic_stack(breaks_at)
    result = find_capacity(probe, SearchConfig(start_qps=1.0, tolerance=0.05))
    assert result.capacity_qps is not None
    assert result.capacity_qps <= breaks_at  # only a passing rate is ever reported
    assert result.capacity_qps >= breaks_at / 1.05
    assert result.failing_qps is not None
    assert (result.failing_qps - result.capacity_qps) / result.capacity_qps <= 0.05
    assert [p.rate_qps for p in result.probes] == probed
    assert probed[:3] == [1.0, 2.0, 4.0]  # exponential first


def test_a_stack_failing_at_the_lowest_rate_has_no_capacity() -> None:
    _, probe = synthetic_stack(0.5)
    result = find_capacity(probe, SearchConfig(start_qps=1.0))
    assert result.failed_at_lowest
    assert result.capacity_qps is None
    assert len(result.probes) == 1


def test_the_search_stops_at_max_qps_without_inventing_a_break() -> None:
    _, probe = synthetic_stack(1e9)
    result = find_capacity(probe, SearchConfig(start_qps=1.0, max_qps=100))
    assert result.capacity_qps == 64.0
    assert result.failing_qps is None


def test_success_below_target_or_no_success_fails() -> None:
    assert not passes(0.5, 0.999, SLO_S, 0.9999)
    assert not passes(math.nan, 0.0, SLO_S, 0.9999)
    assert passes(1.0, 1.0, SLO_S, 0.9999)


def test_intervals_widen_when_trials_disagree() -> None:
    agreeing, disagreeing = mean_interval([10.0, 10.1, 9.9]), mean_interval([5.0, 15.0, 10.0])
    assert agreeing.value == pytest.approx(10.0)
    assert disagreeing.value == pytest.approx(10.0)
    assert disagreeing.width > 10 * agreeing.width
    # t(0.975, 2) = 4.303; s = 0.1 -> half width 4.303 * 0.1 / sqrt(3) = 0.2484
    assert agreeing.high - agreeing.value == pytest.approx(0.2484, abs=1e-4)
    tight = ratio_interval([16.0, 16.2, 15.8], [10.0, 10.1, 9.9])
    loose = ratio_interval([8.0, 24.0, 16.0], [10.0, 10.1, 9.9])
    assert tight.value == pytest.approx(1.6)
    assert loose.width > 5 * tight.width


def test_one_trial_gives_no_interval_and_the_verdict_says_so() -> None:
    single = ratio_interval([16.0], [10.0])
    assert single.value == 1.6
    assert math.isnan(single.low)
    assert "one trial" in verdict(single, "optimized", "diy")


def test_the_verdict_calls_a_winner_only_outside_1() -> None:
    assert verdict(ratio_interval([16.0, 16.2, 15.8], [10.0, 10.1, 9.9]), "optimized",
                   "diy").startswith("optimized serves more than diy")
    assert verdict(ratio_interval([8.0, 14.0, 11.0], [10.0, 10.5, 9.5]), "optimized",
                   "diy").startswith("too close to call")
