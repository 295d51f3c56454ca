"""The scorecard's rows, computed from what each part measured: P99 at a fixed load and success
under a replica kill from their per-request records, capacity from its search's summary.

Each stack's figure carries a 95 % interval that makes no assumption about its distribution:
P99 from order statistics (`metrics.quantile_interval`), success from Clopper–Pearson
(`metrics.success_interval`), capacity from the Student t over trials
(`harness.experiments.capacity.stats`). A row names a winner only when the winner's interval
lies wholly on the better side of every other stack's and each of its trials beats each trial
of the others (for capacity: when the paired ratio's interval excludes 1). It finds the stacks
alike (`harness.measure.alike`) when the ratio's interval lies within the equivalence margin
and so does each trial's ratio (P99 and capacity only: for success, 10 % is too much to call
alike). For P99 and success the ratio's bounds are those of the two
intervals divided (low ÷ high, high ÷ low): both intervals hold together with at least 90 %
probability (Bonferroni), the level of a two-one-sided-tests equivalence at 5 %. Otherwise the
verdict says the row is too close to call and why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.measure.alike import in_practice_words, margin_words, within_margin
from harness.measure.metrics import (
    Window,
    in_window,
    quantile_interval,
    success_interval,
    summarize,
)
from harness.report.results import CapacitySummary
from harness.report.scorecard_results import ROW_LABELS, ScoreFigure, ScoreRow, SendLag
from harness.report.tables import missing

P99 = 0.99
SEND_LAG_LIMIT_S = 0.010  # the load generator's send-lag P99 the scorecard holds itself to
# The fixed load is meant to lie well below capacity. From this share of a stack's capacity on,
# its queue, not its speed, sets its P99 (at 80 % an M/M/1 queue already waits 4 service
# times), so the row says so.
NEAR_CAPACITY = 0.8
ORDER_STATISTICS = "distribution-free order statistics, 95 %, trials pooled"
CLOPPER_PEARSON = "exact Clopper–Pearson, 95 %, trials pooled"


@dataclass(frozen=True, slots=True)
class RowContext:
    """How a row's part was measured and where it lies."""

    setting: str
    part: str
    baseline: str


def _trials(frame: pd.DataFrame) -> list[pd.DataFrame]:
    return [group for _, group in frame.groupby("trial", sort=True)]


def _latency(frame: pd.DataFrame) -> np.ndarray:
    ok = frame[frame["ok"]]
    return (ok["done_s"] - ok["scheduled_s"]).to_numpy(dtype=np.float64)


def _quantile(values: np.ndarray) -> float:
    return float(np.quantile(values, P99)) if values.size else math.nan


def p99_figure(records: pd.DataFrame, window: Window, slo_s: float) -> ScoreFigure:
    """End-to-end P99 (from the scheduled send) over the successes of every trial's window."""
    measured = in_window(records, window)
    latency = _latency(measured)
    low, high = quantile_interval(latency, P99)
    failed = int((~measured["ok"]).sum())
    note = (f"{int((latency > slo_s).sum())} of {latency.size} successes over the "
            f"{slo_s * 1000:,.0f} ms SLO" + (f"; {failed} failed" if failed else ""))
    if math.isnan(high):
        note += f"; no upper bound under {_fewest_for_upper_bound(P99)} successes"
    return ScoreFigure(value=_quantile(latency), ci_low=low, ci_high=high,
                       requests=int(latency.size),
                       trials=[_quantile(_latency(trial)) for trial in _trials(measured)],
                       note=note)


def _fewest_for_upper_bound(quantile: float, confidence: float = 0.95) -> int:
    """The fewest values whose quantile interval has an upper bound: q^n ≤ (1 − c) / 2."""
    return math.ceil(math.log((1 - confidence) / 2) / math.log(quantile))


def success_figure(records: pd.DataFrame, window: Window) -> ScoreFigure:
    """Success over every request scheduled in the windows (one never answered failed)."""
    measured = in_window(records, window)
    ok, requests = int(measured["ok"].sum()), len(measured)
    low, high = success_interval(ok, requests)
    return ScoreFigure(value=ok / requests if requests else math.nan, ci_low=low, ci_high=high,
                       requests=requests,
                       trials=[float(trial["ok"].mean()) for trial in _trials(measured)],
                       note=f"{requests - ok} of {requests} failed")


def _bound(value: float | None, open_side: float) -> float:
    """A bound, or `open_side` where there is none (an open side of an interval)."""
    return open_side if value is None or math.isnan(value) else value


def _winner(figures: Mapping[str, ScoreFigure], higher_is_better: bool) -> str | None:
    """The stack whose interval lies wholly on the better side of every other's; an open
    bound (too few requests) never clears anything."""
    if len(figures) < 2:
        return None
    for name, mine in figures.items():
        others = [figure for other, figure in figures.items() if other != name]
        if higher_is_better:
            beats = all(_bound(mine.ci_low, -math.inf) > _bound(other.ci_high, math.inf)
                        for other in others)
        else:
            beats = all(_bound(mine.ci_high, math.inf) < _bound(other.ci_low, -math.inf)
                        for other in others)
        if beats:
            return name
    return None


def _show(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "?"
    return {"s": f"{value * 1000:,.0f} ms", "%": f"{value:.2%}",
            "QPS": f"{value:.3g} QPS", "seconds": f"{value:,.0f} s"}[unit]


def _interval(figure: ScoreFigure, unit: str) -> str:
    return (f"{_show(figure.value, unit)} [{_show(figure.ci_low, unit)}, "
            f"{_show(figure.ci_high, unit)}]")


def _divided(top: float | None, bottom: float | None) -> float | None:
    """top ÷ bottom; None where either is missing or bottom is 0."""
    if top is None or bottom is None or math.isnan(top) or math.isnan(bottom) or not bottom:
        return None
    return top / bottom


def _ratio(figures: Mapping[str, ScoreFigure], baseline: str) -> float | None:
    """The first other stack's value ÷ the baseline's (None where either is missing)."""
    other = next((figure.value for name, figure in figures.items() if name != baseline), None)
    return _divided(other, figures[baseline].value if baseline in figures else None)


def _trials_agree(figures: Mapping[str, ScoreFigure], winner: str,
                  higher_is_better: bool) -> bool:
    """Whether every trial of the winner beats every trial of every other stack: the pooled
    intervals count the requests' noise, not the drift between trials, which on a small
    machine can be larger."""
    def known(figure: ScoreFigure) -> list[float]:
        return [value for value in figure.trials if value is not None and not missing(value)]

    mine = known(figures[winner])
    theirs = [value for name, figure in figures.items() if name != winner
              for value in known(figure)]
    if not mine or not theirs:
        return False
    return min(mine) > max(theirs) if higher_is_better else max(mine) < min(theirs)


def _ratio_bounds(figures: Mapping[str, ScoreFigure],
                  baseline: str) -> tuple[float | None, float | None]:
    """The first other stack ÷ the baseline, from the two intervals divided: (its low ÷ the
    baseline's high, its high ÷ the baseline's low); None for a side that is open."""
    other = next((figure for name, figure in figures.items() if name != baseline), None)
    base = figures.get(baseline)
    if other is None or base is None:
        return None, None
    return _divided(other.ci_low, base.ci_high), _divided(other.ci_high, base.ci_low)


def _trials_alike(figures: Mapping[str, ScoreFigure], baseline: str) -> bool:
    """Whether each trial of every other stack lies within the margin of the baseline's trial
    of the same index (trials are interleaved, so trial k of both shared the machine's mood)."""
    base = figures[baseline].trials if baseline in figures else []
    ratios = [mine / theirs if mine is not None and theirs else None
              for name, figure in figures.items() if name != baseline
              for mine, theirs in zip(figure.trials, base, strict=False)]
    return bool(ratios) and all(within_margin(ratio, ratio) for ratio in ratios)


def interval_row(dimension: str, label: str, unit: str, higher_is_better: bool,
                 figures: Mapping[str, ScoreFigure], context: RowContext,
                 method: str, may_be_alike: bool = True) -> ScoreRow:
    """A row judged by each stack's own interval: a winner only where they do not overlap and
    its every trial beats every trial of the others; alike where the ratio's bounds and every
    trial's ratio lie within the equivalence margin (not for `may_be_alike` False: a ratio of
    success rates within 10 % still hides up to 10 % of requests lost)."""
    separate = _winner(figures, higher_is_better)
    winner = separate if separate is not None and _trials_agree(
        figures, separate, higher_is_better) else None
    low, high = _ratio_bounds(figures, context.baseline)
    alike = (may_be_alike and len(figures) == 2 and within_margin(low, high)
             and _trials_alike(figures, context.baseline))
    shown = "; ".join(f"{name} {_interval(figure, unit)}" for name, figure in figures.items())
    if winner is not None:
        verdict = (f"{winner} {'higher' if higher_is_better else 'lower'}"
                   + (in_practice_words() if alike else "") + f": {shown}")
    elif alike:
        verdict = (f"alike, {margin_words()}: the ratio lies in [{low:.2f}, {high:.2f}] and "
                   f"each trial's within the margin too: {shown}")
    elif separate is not None:
        trials = "; ".join(f"{name} " + ", ".join(_show(value, unit) for value in figure.trials)
                           for name, figure in figures.items())
        verdict = (f"too close to call: the intervals do not overlap but the trials do, so the "
                   f"stacks differ less than the trials drift: {trials}")
    elif any(missing(figure.ci_low) or missing(figure.ci_high) for figure in figures.values()):
        verdict = f"too close to call: an interval is open (too few requests): {shown}"
    else:
        verdict = f"too close to call: the intervals overlap: {shown}"
    return ScoreRow.model_validate({
        "dimension": dimension, "label": label, "unit": unit,
        "higher_is_better": higher_is_better, "setting": context.setting,
        "stacks": dict(figures), "ratio": _ratio(figures, context.baseline),
        "ratio_ci_low": low, "ratio_ci_high": high, "winner": winner, "alike": alike,
        "verdict": verdict, "interval_method": method, "part": context.part})


def p99_at_load_row(records: Mapping[str, pd.DataFrame], window: Window, slo_s: float,
                    context: RowContext) -> ScoreRow:
    return interval_row("p99_at_load", ROW_LABELS["p99_at_load"], "s", False,
                        {name: p99_figure(frame, window, slo_s)
                         for name, frame in records.items()}, context, ORDER_STATISTICS)


def near_capacity(row: ScoreRow, load_qps: float,
                  capacities: Mapping[str, float | None]) -> ScoreRow:
    """The P99 row, its verdict followed by a caveat where the fixed load came within
    `NEAR_CAPACITY` of a stack's capacity measured in the same run (a slower machine than the
    default was chosen on), and the load that would lie at half the lowest capacity."""
    shares = {name: load_qps / capacity for name, capacity in capacities.items()
              if capacity is not None and capacity > 0}
    near = {name: share for name, share in shares.items() if share >= NEAR_CAPACITY}
    if not near:
        return row
    which = " and ".join(f"{share:.0%} of {name}'s ({capacities[name]:.1f} QPS)"
                         for name, share in near.items())
    half = min(capacity for capacity in capacities.values() if capacity) / 2
    caveat = (f"; the fixed load, {load_qps:g} QPS, is {which} capacity found here: near "
              f"capacity a P99 rests on how close to its limit each stack runs more than on "
              f"its speed; for a P99 well below capacity, rerun with --load-qps {half:.0f}")
    return row.model_copy(update={"verdict": row.verdict + caveat})


def success_under_kill_row(records: Mapping[str, pd.DataFrame], window: Window,
                           context: RowContext) -> ScoreRow:
    return interval_row("success_under_kill", ROW_LABELS["success_under_kill"], "%", True,
                        {name: success_figure(frame, window)
                         for name, frame in records.items()}, context, CLOPPER_PEARSON,
                        may_be_alike=False)


def capacity_row(summary: CapacitySummary, context: RowContext) -> ScoreRow:
    """Capacity at the SLO: each stack's mean over its searches with its t interval; the
    verdict is the paired ratio's (`capacity.stats.capacity_ratio`)."""
    figures = {}
    for name, row in summary.stacks.items():
        judged = [probe for probe in row.probes if probe.stopped_early is None]
        figures[name] = ScoreFigure(
            value=row.capacity_qps, ci_low=row.ci_low, ci_high=row.ci_high,
            requests=sum(probe.requests for probe in row.probes),
            trials=[trial.capacity_qps for trial in row.trials],
            note=f"{row.status.replace('_', ' ')}: {row.note}; {len(row.probes)} probes, "
                 f"{len(judged)} judged whole")
    ratio = summary.ratio
    side = None if ratio is None else ratio.side
    winner = {"above": None if ratio is None else ratio.stack,
              "below": summary.baseline}.get(side or "")
    losers = [row for name, row in summary.stacks.items() if name != winner]
    if any(row.status == "lower_bound" for row in losers):
        winner = None  # the loser's capacity may lie higher than its search reached
    return ScoreRow.model_validate({
        "dimension": "capacity", "label": ROW_LABELS["capacity"], "unit": "QPS",
        "higher_is_better": True, "setting": context.setting, "stacks": figures,
        "ratio": None if ratio is None else ratio.value,
        "ratio_ci_low": None if ratio is None else ratio.ci_low,
        "ratio_ci_high": None if ratio is None else ratio.ci_high,
        "winner": winner, "alike": ratio is not None and ratio.alike,
        "verdict": "no ratio: a stack has no capacity" if ratio is None else ratio.verdict,
        "interval_method": (ratio.method if ratio is not None and ratio.method
                            else "Student t over trials"),
        "part": context.part})


def send_lag_check(capacity: CapacitySummary,
                   phases: Mapping[str, tuple[Mapping[str, pd.DataFrame], Window]],
                   slo_s: float) -> SendLag:
    """The worst send-lag P99 over every replay judged whole (each trial of each phase, each
    probe not stopped early), each taken as `harness run` takes it (`metrics.summarize`:
    requests scheduled in the window and sent), and apart from it that of the probes stopped
    once failing was certain. An overloaded probe falls behind its schedule by construction
    (its senders wait on a stack that no longer keeps up); its lag matters only where the
    probe would have passed without it, that is, where its P99 from the actual send is within
    the SLO."""
    whole: list[tuple[float | None, str]] = []
    overloaded: list[tuple[float | None, str]] = []
    late: list[str] = []
    for name, row in capacity.stacks.items():
        for probe in row.probes:
            where = f"{name} trial {probe.trial}, probe at {probe.rate_qps:g} QPS"
            (whole if probe.stopped_early is None else overloaded).append(
                (probe.send_lag_p99_s, where))
            lag, service = probe.send_lag_p99_s, probe.service_p99_s
            if (probe.stopped_early is not None and lag is not None
                    and lag > SEND_LAG_LIMIT_S and (service is None or service <= slo_s)):
                late.append(where)
    for phase, (records, window) in phases.items():
        for name, frame in records.items():
            for trial, group in frame.groupby("trial", sort=True):
                whole.append((summarize(group, window, slo_s, stream=False)["send_lag_p99_s"],
                              f"{name} trial {trial}, {phase} phase"))
    worst, where, count = _worst(whole)
    overloaded_worst, overloaded_where, _ = _worst(overloaded)
    return SendLag(worst_p99_s=worst, worst_where=where, replays=count,
                   overloaded_worst_p99_s=overloaded_worst, overloaded_where=overloaded_where,
                   overloaded=len(overloaded), overloaded_late=late, limit_s=SEND_LAG_LIMIT_S)


def _worst(lags: list[tuple[float | None, str]]) -> tuple[float | None, str, int]:
    """The largest known lag, where it was, and how many were known."""
    known = [(lag, where) for lag, where in lags if lag is not None and not math.isnan(lag)]
    worst, where = max(known, key=lambda item: item[0], default=(None, "nothing sent"))
    return worst, where, len(known)
