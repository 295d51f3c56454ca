"""The capacity search on synthetic stacks, and its intervals."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from harness.experiments.capacity.search import (
    Probe,
    SearchConfig,
    SearchResult,
    certain_failure,
    find_capacity,
    passes,
    round_rate,
)
from harness.experiments.capacity.stats import (
    capacity_ratio,
    mean_interval,
    ratio_interval,
    stack_capacity,
    trials_to_resolve,
    verdict,
)
from harness.report.results import StackCapacity

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
    probed, probe = synthetic_stack(0.1)
    result = find_capacity(probe, SearchConfig(start_qps=1.0))
    assert result.failed_at_lowest
    assert result.capacity_qps is None
    assert probed == [1.0, 0.5, 0.25]  # down to the floor, start ÷ growth², and no further
    probed, probe = synthetic_stack(0.1)
    find_capacity(probe, SearchConfig(start_qps=1.0, min_qps=0.3))
    assert probed == [1.0, 0.5, 0.3]


def test_a_start_above_capacity_comes_down_then_bisects() -> None:
    probed, probe = synthetic_stack(0.7)
    result = find_capacity(probe, SearchConfig(start_qps=1.0, tolerance=0.05))
    assert probed[:2] == [1.0, 0.5]  # down once, then never up past a known failure
    assert all(rate < 1.0 for rate in probed[1:])
    assert result.capacity_qps is not None
    assert 0.7 / 1.05 <= result.capacity_qps <= 0.7
    assert result.resolved(0.05)


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
    assert tight.value == pytest.approx(1.6, rel=1e-4)  # the geometric mean of the ratios
    assert loose.width > 5 * tight.width
    assert tight.low < tight.value < tight.high


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


def test_trials_to_resolve_is_the_fewest_whose_t_interval_is_narrow_enough() -> None:
    # At a spread of 0.1: t(5) · 0.1 / √6 = 0.105 still reaches ±0.1, t(6) · 0.1 / √7 = 0.092
    # does not.
    assert trials_to_resolve(0.1, 0.1) == 7
    assert trials_to_resolve(0.0, 0.05) == 2
    assert trials_to_resolve(0.1, 0.001) is None  # beyond 100 trials
    assert trials_to_resolve(0.1, 0.0) is None  # no difference to find


def test_an_undecided_verdict_says_what_spread_and_how_many_trials_would_decide() -> None:
    undecided = ratio_interval([8.0, 14.0, 11.0], [10.0, 10.5, 9.5])
    said = verdict(undecided, "optimized", "diy")
    assert said.startswith("too close to call")
    assert f"spread {undecided.log_sd:.0%}" in said
    difference = abs(math.log(undecided.value))
    assert f"would take about {trials_to_resolve(undecided.log_sd, difference)} trials" in said
    # 1.07× lies within ±10 %: how many trials "alike" would take is said as well.
    assert "and calling them alike (within ±10%)" in said


def test_an_interval_within_the_margin_says_alike_and_a_ratio_reads_it_so() -> None:
    close = ratio_interval([16.0, 16.1, 15.9], [16.0, 16.0, 16.05])
    assert close.low < 1 < close.high
    assert verdict(close, "optimized", "diy").startswith("alike: optimized ÷ diy = 1.00×")
    assert verdict(close, "optimized", "diy", may_be_alike=False).startswith(
        "too close to call")


def test_capacities_alike_only_where_both_were_bracketed() -> None:
    def stack(status: str, trials: list[float]) -> StackCapacity:
        return StackCapacity.model_validate({
            "replicas": 2, "status": status, "note": "", "capacity_qps": float(np.mean(trials)),
            "per_replica_capacity_qps": None, "ci_low": None, "ci_high": None,
            "interval_method": None,
            "trials": [{"trial": index + 1, "capacity_qps": value, "failing_qps": value * 1.02,
                        "bracket_qps": value * 0.02, "resolved": True, "probes": 3}
                       for index, value in enumerate(trials)]})

    both = capacity_ratio("optimized", stack("measured", [16.0, 16.1, 15.9]), "diy",
                          stack("measured", [16.0, 16.0, 16.05]))
    assert both.alike
    assert both.side == "alike"
    assert both.verdict.startswith("alike")
    bound = capacity_ratio("optimized", stack("lower_bound", [16.0, 16.1, 15.9]), "diy",
                           stack("measured", [16.0, 16.0, 16.05]))
    assert not bound.alike
    assert bound.side == "includes"
    assert bound.verdict.startswith("too close to call")
    assert bound.model_copy(update={"ci_low": 1.01, "ci_high": 1.05}).side == "above"
    # A winner by less than the margin is named, and said to be alike in practice.
    small = capacity_ratio("optimized", stack("measured", [16.4, 16.5, 16.45]), "diy",
                           stack("measured", [16.0, 16.0, 16.05]))
    assert small.side == "above"
    assert small.alike
    assert small.verdict.startswith("optimized serves more than diy, by less than 10% "
                                    "(alike in practice)")


def test_two_stacks_searching_the_same_range_probe_the_same_rates() -> None:
    first, probe_a = synthetic_stack(37.0)
    second, probe_b = synthetic_stack(38.0)
    find_capacity(probe_a, SearchConfig(start_qps=1.0))
    find_capacity(probe_b, SearchConfig(start_qps=1.0))
    shared = set(first) & set(second)
    assert {1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 48.0, 40.0} <= shared  # one schedule each
    assert all(rate == round_rate(rate) for rate in first + second)


@pytest.mark.parametrize("breaks_at", [160.0, 163.0, 171.0])
def test_a_search_from_an_earlier_capacity_brackets_it_in_two_or_three_probes(
        breaks_at: float) -> None:
    config = SearchConfig(start_qps=16.0, tolerance=0.05)
    _, probe = synthetic_stack(breaks_at)
    first = find_capacity(probe, config)
    again, probe = synthetic_stack(breaks_at)
    result = find_capacity(probe, config, hint=first.capacity_qps)
    assert again[0] == first.capacity_qps
    assert len(again) <= 3 < len(first.probes)
    assert result.resolved(0.05)
    assert breaks_at / 1.05 <= (result.capacity_qps or 0) <= breaks_at


@pytest.mark.parametrize(("hint", "breaks_at"), [(160.0, 20.0), (160.0, 1500.0), (5.0, 5.2)])
def test_a_search_from_a_hint_far_off_gallops_to_the_capacity(hint: float,
                                                              breaks_at: float) -> None:
    probed, probe = synthetic_stack(breaks_at)
    result = find_capacity(probe, SearchConfig(start_qps=16.0, tolerance=0.05), hint=hint)
    assert result.resolved(0.05)
    assert breaks_at / 1.05 <= (result.capacity_qps or 0) <= breaks_at
    assert len(probed) <= 13  # from up to 9× off, as many as a search from 16 QPS takes
    # Away from the hint, each step at least as long as the last, until the verdict flips.
    steps = [abs(math.log(b / a)) for a, b in zip(probed, probed[1:], strict=False)]
    flips = next(index for index, rate in enumerate(probed)
                 if (rate <= breaks_at) != (hint <= breaks_at))
    assert all(later >= earlier * 0.99 for earlier, later in zip(steps[:flips - 1],
                                                                steps[1:flips], strict=False))
    assert max(steps) <= math.log(2.0) * 1.01  # never wider than the search's growth


def test_a_hint_never_hides_a_stack_with_no_capacity() -> None:
    probed, probe = synthetic_stack(0.1)
    result = find_capacity(probe, SearchConfig(start_qps=16.0), hint=160.0)
    assert result.failed_at_lowest
    assert probed[-1] == SearchConfig(start_qps=16.0).floor_qps == 4.0
    assert probed == sorted(probed, reverse=True)


@pytest.mark.parametrize("growth", [2.0, 1.0001])
def test_a_step_finer_than_rates_are_written_moves_to_the_next_rate_written(
        growth: float) -> None:
    probed, probe = synthetic_stack(1300.0)
    result = find_capacity(probe, SearchConfig(start_qps=16.0, tolerance=0.0001, growth=growth,
                                               max_probes=200), hint=999.0)
    assert probed[:2] == [999.0, 1000.0]
    assert len(probed) == len(set(probed))  # no rate probed twice
    # Down from a power of ten, the next rate written is 999, not 990.
    down, probe = synthetic_stack(950.0)
    find_capacity(probe, SearchConfig(start_qps=16.0, tolerance=0.0001, growth=growth),
                  hint=1000.0)
    assert down[:2] == [1000.0, 999.0]
    assert result.capacity_qps is not None
    assert result.capacity_qps <= 1300.0


def test_identical_trials_still_get_the_searchs_resolution_as_interval() -> None:
    exact = mean_interval([20.0, 20.0, 20.0])
    bracketed = mean_interval([20.0, 20.0, 20.0], [1.0, 1.0, 1.0])
    assert exact.width == 0
    # sd from the bracket: 1 / sqrt(12); t(0.975, 2) = 4.303 -> half 4.303 * 0.2887 / sqrt 3
    assert bracketed.high - 20.0 == pytest.approx(4.303 * (1 / 12 ** 0.5) / 3 ** 0.5, rel=1e-3)


@pytest.mark.parametrize(("requests", "failed", "late", "certain"), [
    (100, 0, 1, False),  # P99 over 100 successes: 1 value above the SLO may sit past it
    (100, 0, 2, True),   # ceil(0.01 * 99) = 1: two above it put P99 above the SLO
    (101, 0, 1, False),
    (101, 0, 2, True),
    (300, 0, 3, False),
    (300, 0, 4, True),
    (300, 1, 0, True),   # 99.99 % success over 300 requests allows no failure
    (0, 0, 0, False),
])
def test_a_probe_is_stopped_only_once_its_failure_is_certain(requests: int, failed: int,
                                                             late: int, certain: bool) -> None:
    assert certain_failure(requests, failed, late, 0.9999) is certain


def test_certain_failure_agrees_with_the_final_p99() -> None:
    """The most late requests a probe may still pass with, it can pass with (the others
    fast, the late ones barely late); one more and the final P99 is over the SLO, whatever
    the values."""
    for requests in (50, 100, 237, 1000):
        allowed = next(late for late in range(requests)
                       if certain_failure(requests, 0, late + 1, 0.5))
        best = np.concatenate([np.full(allowed, 1.001), np.full(requests - allowed, 0.1)])
        worse = np.concatenate([np.full(allowed + 1, 1.001),
                                np.full(requests - allowed - 1, 0.1)])
        assert np.quantile(best, 0.99) <= SLO_S
        assert np.quantile(worse, 0.99) > SLO_S


def search(capacity: float | None, failing: float | None) -> SearchResult:
    return SearchResult(capacity_qps=capacity, failing_qps=failing)


def test_a_stack_failing_at_the_lowest_rate_is_reported_as_such_never_as_zero() -> None:
    config = SearchConfig(start_qps=2.0)
    row = stack_capacity([search(None, 2.0), search(None, 2.0)], config, 2)
    assert row.status == "fails_at_lowest_rate"
    assert row.capacity_qps is None
    assert row.per_replica_capacity_qps is None
    assert "even at 0.5 QPS" in row.note
    assert "every trial" in row.note
    other = stack_capacity([search(10.0, 10.5), search(10.0, 10.5)], config, 2)
    ratio = capacity_ratio("optimized", other, "diy", row)
    assert ratio.value is None
    assert ratio.verdict.startswith("no ratio: diy has no capacity")


def test_stack_capacity_has_interval_per_replica_and_status() -> None:
    config = SearchConfig(start_qps=2.0, tolerance=0.05)
    row = stack_capacity([search(20.0, 21.0), search(22.0, 23.0), search(21.0, 22.0)], config, 2)
    assert row.status == "measured"
    assert row.capacity_qps == pytest.approx(21.0)
    assert row.per_replica_capacity_qps == pytest.approx(10.5)
    assert row.ci_low < 21.0 < row.ci_high
    assert row.per_replica_ci_low == pytest.approx(row.ci_low / 2)
    assert [trial.capacity_qps for trial in row.trials] == [20.0, 22.0, 21.0]
    unknown = stack_capacity([search(20.0, 21.0)], config, None)
    assert unknown.per_replica_capacity_qps is None
    assert unknown.ci_low is None  # one trial: no interval, never a made-up one


def test_a_search_that_never_failed_gives_only_a_lower_bound() -> None:
    config = SearchConfig(start_qps=2.0, max_qps=64)
    row = stack_capacity([search(64.0, None), search(64.0, None)], config, 1)
    assert row.status == "lower_bound"
    assert "at least" in row.note
    base = stack_capacity([search(20.0, 21.0), search(20.0, 21.0)], config, 1)
    ratio = capacity_ratio("optimized", row, "diy", base)
    assert ratio.value == pytest.approx(3.2)
    assert "only has a lower bound" in ratio.verdict
