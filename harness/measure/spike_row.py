"""The scorecard's spike rows, in short form: in the last `spike_trials` trials each stack
replays one spike (`workloads/scenarios/spike_short.yaml`) as its spec deploys it. A stack with
an `autoscaling:` section starts the spike at its floor and its own policy scales it; any
other serves it with its fixed `replicas`, as a fleet provisioned for the peak does. Two rows
show the two sides of that choice, from the scaling metrics of `harness.measure.scaling`:

- **SLO-violating seconds**: seconds of the window whose P99 was over the SLO or that had a
  failure: what the spike cost the users;
- **replica-seconds**: replicas ready, starting or draining × seconds: what it cost the fleet.

Each figure is a mean over the spike trials with its Student-t interval; with one trial (the
demo's) there is none, and the row says so. `harness run --scenario spike --ablate-scaling`
is the long form: the whole spike, trials and the policies side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from harness.experiments.capacity.stats import mean_interval
from harness.measure.metrics import Window, in_window
from harness.measure.scaling import frame_scaling, scaling_metrics
from harness.measure.scorecard import RowContext, interval_row
from harness.report.scorecard_results import ROW_LABELS, ScoreFigure, ScoreRow

SPIKE = "spike"  # the phase's folder in each trial
SPIKE_SCALING = "scaling.parquet"  # in it: the autoscaler's log on the records' clock


def trial_metrics(folder: Path, stack: str, records: pd.DataFrame, window: Window,
                  slo_s: float, peaks: list[tuple[float, float]],
                  fleet: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The scaling metrics of each spike trial of one stack, in trial order."""
    found = []
    for trial in sorted(records["trial"].unique()):
        log = pd.read_parquet(folder / stack / f"trial-{trial}" / SPIKE / SPIKE_SCALING)
        scaling = frame_scaling(log, int(trial))
        found.append(scaling_metrics(records[records["trial"] == trial], [scaling], window,
                                     slo_s, peaks, fleet.get("replicas")))
    return found


def fleet_words(fleet: Mapping[str, Any]) -> str:
    if fleet.get("policy", "static") == "static":
        return f"static, {fleet.get('replicas')} replicas"
    return f"{fleet['policy']}, {fleet['min_replicas']} → {fleet['max_replicas']} replicas"


def _figure(values: list[float | None], requests: int, note: str) -> ScoreFigure:
    known = [value for value in values if value is not None]
    if not known:
        return ScoreFigure(value=None, ci_low=None, ci_high=None, requests=requests,
                           trials=list(values), note=note)
    interval = mean_interval(known)
    # Neither a count of seconds nor a cost goes below 0, where a t interval of few trials can.
    return ScoreFigure(value=interval.value, ci_low=max(interval.low, 0.0),
                       ci_high=interval.high, requests=requests, trials=list(values),
                       note=note)


def _slo_note(fleet: Mapping[str, Any], trials: list[dict[str, Any]]) -> str:
    said = [fleet_words(fleet)]
    for metrics in trials:
        peak = metrics["latency_p99_peak_s"]
        words = ("no success in the spike" if peak is None else
                 f"P99 in the spike {peak * 1000:,.0f} ms over {metrics['peak_requests']} "
                 "successes")
        if metrics["scale_ups"] or metrics["cold_starts"]:
            started = metrics["cold_start_s_max"]
            words += (f", {metrics['scale_ups']:g} scale-up(s), "
                      + ("no replica joined in the window" if started is None
                         else f"the slowest added replica serving after {started:.0f} s"))
        said.append(words + f", {metrics['failed_by_scaling']} failed by scaling")
    return "; ".join(said)


def spike_rows(folder: Path, records: Mapping[str, pd.DataFrame], window: Window,
               peaks: list[tuple[float, float]], fleets: Mapping[str, Mapping[str, Any]],
               slo_s: float, baseline: str, scenario: str) -> list[ScoreRow]:
    """The two rows over the spike trials every stack finished (`records`, pooled)."""
    slo, cost = {}, {}
    trials = 0
    for stack, frame in records.items():
        fleet = fleets.get(stack, {})
        found = trial_metrics(folder, stack, frame, window, slo_s, peaks, fleet)
        trials = len(found)
        requests = len(in_window(frame, window))
        slo[stack] = _figure([m["slo_violating_s"] for m in found], requests,
                             _slo_note(fleet, found))
        cost[stack] = _figure([m["replica_seconds"] for m in found], requests,
                              f"{fleet_words(fleet)}: replicas ready, starting or draining × "
                              f"seconds over the {window.length_s:g} s window")
    setting = f"{scenario}, {trials} × {window.length_s:g} s, short form"
    method = f"Student t over {trials} spike(s), 95 %"
    rows = [interval_row(dimension, ROW_LABELS[dimension], "seconds", False, figures,
                         RowContext(setting, SPIKE, baseline), method)
            for dimension, figures in (("spike_slo", slo), ("spike_cost", cost))]
    if trials > 1:
        return rows
    return [row.model_copy(update={"verdict": _one_spike(row, list(records))})
            for row in rows]


def _one_spike(row: ScoreRow, stacks: list[str]) -> str:
    shown = "; ".join(f"{name} {figure.value:,.0f} s" for name, figure in row.stacks.items()
                      if figure.value is not None)
    return (f"too close to call: one spike each (short form) gives no interval: {shown}; "
            f"`harness run --stacks {','.join(stacks)} --scenario spike --trials 3` "
            "repeats it")
