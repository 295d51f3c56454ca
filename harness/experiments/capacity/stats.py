"""How sure a capacity is: over K interleaved trials, a stack's capacity is the mean with a
two-sided Student-t 95 % interval. The ratio of two stacks pairs trials by index (interleaved
trials share the machine's moods): it is the geometric mean of the K paired ratios, with a
Student-t interval on their logarithms. With the few trials a capacity search affords (2 to 5),
a percentile bootstrap would give intervals far narrower than the truth; the t interval does
not. Every interval includes the search's own resolution (its bracket width).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from harness.experiments.capacity.search import SearchConfig, SearchResult
from harness.measure.alike import (
    ALIKE_MARGIN,
    in_practice_words,
    margin_words,
    within_margin,
)
from harness.report.results import CapacityRatio, StackCapacity

CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    value: float
    low: float
    high: float
    method: str
    log_sd: float = math.nan  # a ratio's: the paired logs' spread, the bracket's included

    @property
    def width(self) -> float:
        return self.high - self.low


def _spread(values: np.ndarray, resolution_var: float) -> float:
    """The trials' standard deviation; `resolution_var` is the variance each value carries
    from the search's bracket (a capacity lies anywhere between the last passing and the
    first failing rate: uniform, w² / 12), so trials that agree to the rate still get an
    interval as wide as the search could tell."""
    return math.sqrt(float(values.var(ddof=1)) + resolution_var)


def _t_half_width(spread: float, trials: int) -> float:
    """Half width of the Student-t interval of the mean of `trials` values of that spread."""
    return float(stats.t.ppf((1 + CONFIDENCE) / 2, trials - 1) * spread / math.sqrt(trials))


def mean_interval(values: Sequence[float], brackets: Sequence[float] | None = None) -> Interval:
    """Mean of the trials' capacities with a two-sided Student-t interval (NaN bounds with a
    single trial: one measurement gives no interval). `brackets`: each trial's bracket width
    (first failing − capacity), whose resolution the interval includes."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if array.size < 2:
        return Interval(mean, math.nan, math.nan, "one trial: no interval")
    widths = np.asarray(brackets if brackets is not None else np.zeros(array.size))
    half = _t_half_width(_spread(array, float((widths ** 2).mean()) / 12), array.size)
    return Interval(mean, mean - half, mean + half,
                    f"Student t over {array.size} trials, {CONFIDENCE:.0%}")


def ratio_interval(stack: Sequence[float], baseline: Sequence[float],
                   relative_brackets: Sequence[float] | None = None) -> Interval:
    """Geometric mean of the paired ratios stack[k] ÷ baseline[k], with a Student-t interval
    on their logarithms. `relative_brackets`: per pair, the root of the summed squares of the
    two searches' relative bracket widths (their resolution, in log terms)."""
    a, b = np.asarray(stack, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.size != b.size or a.size == 0:
        raise ValueError("the ratio needs the same number of trials for both stacks")
    logs = np.log(a / b)
    value = float(np.exp(logs.mean()))
    if a.size < 2:
        return Interval(value, math.nan, math.nan, "one trial: no interval")
    widths = np.asarray(relative_brackets if relative_brackets is not None
                        else np.zeros(a.size))
    spread = _spread(logs, float((widths ** 2).mean()) / 12)
    half = _t_half_width(spread, a.size)
    return Interval(value, float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half)),
                    f"paired Student t on log ratios over {a.size} trials, {CONFIDENCE:.0%}",
                    spread)


def trials_to_resolve(log_sd: float, half_width: float, most: int = 100) -> int | None:
    """The fewest trials whose paired t interval would be narrower than ±`half_width` (in
    logs) at the measured spread `log_sd`; None beyond `most`, or where no width would do."""
    if half_width <= 0 or not math.isfinite(log_sd):
        return None
    return next((trials for trials in range(2, most + 1)
                 if _t_half_width(log_sd, trials) < half_width), None)


def _how_many(trials: int | None) -> str:
    return "more than 100" if trials is None else f"about {trials}"


def why_undecided(ratio: Interval, margin: float = ALIKE_MARGIN) -> str:
    """Why a ratio's interval decides nothing, measured: the trials' spread against the
    difference, and how many trials that spread would take to name a winner (an interval
    clear of 1) or to call the stacks alike (one within the margin), were the measured
    difference and spread the true ones."""
    difference = abs(math.log(ratio.value))
    said = (f"its trials' paired ratios spread {ratio.log_sd:.0%} (sd of their logs) around a "
            f"{abs(ratio.value - 1):.0%} difference: at that spread, naming a winner would "
            f"take {_how_many(trials_to_resolve(ratio.log_sd, difference))} trials")
    room = math.log(1 + margin) - difference
    if room > 0:
        said += (f", and calling them alike ({margin_words(margin)}) "
                 f"{_how_many(trials_to_resolve(ratio.log_sd, room))}")
    return said


def verdict(ratio: Interval, stack: str, baseline: str, may_be_alike: bool = True) -> str:
    """Who wins, that the two are alike (`harness.measure.alike`; not where `may_be_alike` is
    False: a capacity known only as a lower bound), or that the interval is too wide to say."""
    if math.isnan(ratio.low):
        return (f"{stack} ÷ {baseline} = {ratio.value:.2f}× from one trial: run --trials 3 "
                "or more for an interval")
    alike = may_be_alike and within_margin(ratio.low, ratio.high)
    in_practice = in_practice_words() if alike else ""
    if ratio.low > 1:
        return f"{stack} serves more than {baseline}{in_practice}: {ratio.value:.2f}× " \
               f"[{ratio.low:.2f}, {ratio.high:.2f}]"
    if ratio.high < 1:
        return f"{baseline} serves more than {stack}{in_practice}: {stack} ÷ {baseline} = " \
               f"{ratio.value:.2f}× [{ratio.low:.2f}, {ratio.high:.2f}]"
    if alike:
        return (f"alike: {stack} ÷ {baseline} = {ratio.value:.2f}× [{ratio.low:.2f}, "
                f"{ratio.high:.2f}], {margin_words()}")
    said = (f"too close to call: {stack} ÷ {baseline} = {ratio.value:.2f}× and its interval "
            f"[{ratio.low:.2f}, {ratio.high:.2f}] includes 1")
    # A capacity known only as a lower bound is undecided by its search, not by the spread.
    return f"{said}; {why_undecided(ratio)}" if may_be_alike else said


def _bound(value: float) -> float | None:
    return None if math.isnan(value) else value


def bracket_width(result: SearchResult) -> float:
    """How far the capacity could lie above the reported rate (0 where it never failed: the
    capacity is then only a lower bound, said elsewhere)."""
    if result.capacity_qps is None or result.failing_qps is None:
        return 0.0
    return result.failing_qps - result.capacity_qps


def stack_capacity(results: Sequence[SearchResult], config: SearchConfig,
                   replicas: int | None) -> StackCapacity:
    """A stack's capacity over its trials, with its interval and a status that says how far
    to trust it:

    - `measured`: every trial bracketed its capacity to the tolerance;
    - `lower_bound`: some search ended before failing (`max_qps`, `max_probes`): the stack
      sustains at least this;
    - `fails_at_lowest_rate`: some trial failed the SLO at the lowest rate probed, so no
      capacity is reported (not 0, not a guess)."""
    trials = [{"trial": index + 1, "capacity_qps": result.capacity_qps,
               "failing_qps": result.failing_qps, "bracket_qps": bracket_width(result),
               "resolved": result.resolved(config.tolerance),
               "probes": len(result.probes)} for index, result in enumerate(results)]
    failed_lowest = [row["trial"] for row in trials if row["capacity_qps"] is None]
    lowest = min((probe.rate_qps for result in results for probe in result.probes),
                 default=config.floor_qps)
    base: dict[str, Any] = {"replicas": replicas, "trials": trials, "capacity_qps": None,
                            "per_replica_capacity_qps": None, "ci_low": None, "ci_high": None,
                            "interval_method": None}
    if not results:
        return StackCapacity.model_validate({**base, "status": "not_run",
                                             "note": "no trial finished"})
    if failed_lowest:
        which = ("every trial" if len(failed_lowest) == len(trials)
                 else "trial " + ", ".join(str(trial) for trial in failed_lowest))
        return StackCapacity.model_validate({
            **base, "status": "fails_at_lowest_rate",
            "note": f"fails the SLO even at {lowest:g} QPS, the lowest rate probed ({which}): "
                    "no capacity to report; lower --min-qps to find it"})
    interval = mean_interval([result.capacity_qps or 0.0 for result in results],
                             [bracket_width(result) for result in results])

    def per_replica(value: float | None) -> float | None:
        return None if replicas is None or value is None else value / replicas

    unresolved = [row["trial"] for row in trials if not row["resolved"]]
    if unresolved:
        status = "lower_bound"
        note = (f"trial {', '.join(str(trial) for trial in unresolved)} never failed up to "
                f"--max-qps {config.max_qps:g} or ran out of probes ({config.max_probes}): "
                "the capacity is at least this")
    else:
        status = "measured"
        note = f"bracketed to {config.tolerance:.0%} in every trial"
    # A capacity is never below 0, whatever the t interval's symmetric half width says.
    low = None if math.isnan(interval.low) else max(0.0, interval.low)
    return StackCapacity.model_validate({
        **base, "status": status, "note": note, "capacity_qps": interval.value,
        "per_replica_capacity_qps": per_replica(interval.value),
        "ci_low": low, "ci_high": _bound(interval.high), "per_replica_ci_low": per_replica(low),
        "per_replica_ci_high": per_replica(_bound(interval.high)),
        "interval_method": interval.method})


def capacity_ratio(stack: str, stack_row: StackCapacity, baseline: str,
                   baseline_row: StackCapacity) -> CapacityRatio:
    """stack ÷ baseline capacity over the trials both finished, with its interval and what
    it lets one say."""
    ratio: dict[str, Any] = {"stack": stack, "baseline": baseline, "value": None,
                             "ci_low": None, "ci_high": None, "method": None}
    for name, row in ((stack, stack_row), (baseline, baseline_row)):
        if row.capacity_qps is None:
            return CapacityRatio.model_validate({
                **ratio, "verdict": f"no ratio: {name} has no capacity ({row.note})"})
    # (capacity, bracket) of each trial both stacks finished with a capacity, paired by index
    pairs = [((mine, a.bracket_qps), (theirs, b.bracket_qps))
             for a, b in zip(stack_row.trials, baseline_row.trials, strict=False)
             if (mine := a.capacity_qps) is not None and (theirs := b.capacity_qps) is not None]
    interval = ratio_interval(
        [mine for (mine, _), _ in pairs], [theirs for _, (theirs, _) in pairs],
        [math.hypot(mine_bracket / mine, theirs_bracket / theirs)
         for (mine, mine_bracket), (theirs, theirs_bracket) in pairs])
    bounds = [name for name, row in ((stack, stack_row), (baseline, baseline_row))
              if row.status == "lower_bound"]
    said = verdict(interval, stack, baseline, may_be_alike=not bounds)
    if bounds:
        said += f" (but {' and '.join(bounds)} only has a lower bound: see its note)"
    return CapacityRatio.model_validate({
        **ratio, "value": interval.value, "ci_low": _bound(interval.low),
        "ci_high": _bound(interval.high), "method": interval.method, "verdict": said,
        "alike": not bounds and within_margin(interval.low, interval.high)})
