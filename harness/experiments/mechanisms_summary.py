"""`mechanisms.json` rebuilt from what each mechanism's run folder holds: a pure function of the
folder, so a run cut short, or read again later, gives the same gains.

Per mechanism, each trial's figure comes from `metrics.summarize` over that trial's records
(divided by the replicas for a throughput), and the gain from the trials both variants
finished, paired by index (`capacity.stats.ratio_interval`): trials are interleaved off/on, so
each pair shared the machine's mood of the moment.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness.experiments.capacity.stats import ratio_interval
from harness.experiments.mechanism_plans import PLANS, MechanismPlan
from harness.experiments.run import measured_window
from harness.measure.metrics import summarize
from harness.report.mechanisms_results import (
    MechanismResult,
    Mechanisms,
    Outcome,
    VariantFigure,
)
from harness.report.results import RunInfo, read_result
from harness.report.saved import read_trials
from harness.workload.spec import WorkloadSpec

MECHANISMS_FILE = "mechanisms.json"
SATURATED = 0.9  # a variant answering this share of what was offered was not saturated
LATE_SENDS_S = 0.010  # the load generator's send lag P99 above which latency is suspect


def calibration_folder(root: Path, mechanism: str) -> Path:
    """Where the run that sets a calibrated mechanism's load is kept."""
    return root / f"{mechanism}-calibration"


def _workload(part: Path) -> WorkloadSpec:
    return WorkloadSpec.model_validate(yaml.safe_load((part / "specs" / "workload.yaml")
                                                      .read_text()))


def _stacks(part: Path) -> list[str]:
    return list(read_result(part / "run.json", RunInfo).model_dump()["stack_names"])


def _replicas(part: Path, stack: str) -> int:
    return int(yaml.safe_load((part / "specs" / f"{stack}.yaml").read_text())["replicas"])


def _summary(frames: list[pd.DataFrame], workload: WorkloadSpec) -> dict[str, Any]:
    return summarize(pd.concat(frames, ignore_index=True), measured_window(workload),
                     workload.slo_s, workload.stream)


def saturated_throughput(folder: Path) -> float | None:
    """The answered QPS of the one stack of a saturated run (the P2C calibration)."""
    stacks = _stacks(folder)
    frames = read_trials(folder, stacks[0])
    if not frames:
        return None
    value = _summary(frames, _workload(folder))["throughput_qps"]
    return None if math.isnan(value) else float(value)


def _figure(summary: dict[str, Any], plan: MechanismPlan, replicas: int) -> float:
    value = float(summary[plan.metric])
    return value / replicas if plan.per_replica else value


def _geometric_mean(values: list[float]) -> float:
    finite = [value for value in values if math.isfinite(value) and value > 0]
    if not finite or len(finite) < len(values):
        return math.nan
    return float(np.exp(np.mean(np.log(finite))))


def _variant(part: Path, stack: str, plan: MechanismPlan,
             workload: WorkloadSpec) -> tuple[VariantFigure, list[float], dict[str, Any]]:
    frames = read_trials(part, stack)
    replicas = _replicas(part, stack)
    trials = [_figure(_summary([frame], workload), plan, replicas) for frame in frames]
    pooled = _summary(frames, workload) if frames else {}
    figure = VariantFigure(
        stack=stack, value=_geometric_mean(trials) if trials else None, trials=list(trials),
        requests=int(pooled.get("requests", 0)), offered_qps=pooled.get("offered_qps"),
        throughput_qps=pooled.get("throughput_qps"),
        send_lag_p99_s=pooled.get("send_lag_p99_s"))
    return figure, trials, pooled


def _setting(plan: MechanismPlan, workload: WorkloadSpec, replicas: int, trials: int,
             calibration: float | None) -> str:
    rate = workload.rate_qps or 0.0
    load = (f"{rate:g} QPS offered, ≤ {workload.max_in_flight} in flight"
            if plan.saturated else f"{rate:.1f} QPS")
    if calibration is not None:
        load += f" (= {rate / calibration:.0%} of the round-robin stack's " \
                f"saturated {calibration:.1f} QPS)"
    scenario = f", scenario {plan.scenario}" if plan.scenario else ""
    return (f"{workload.name}: {workload.prompt_tokens.mean:.0f} tokens in, "
            f"{workload.output_tokens.mean:.0f} out, {load}, {replicas} "
            f"replica{'s' if replicas > 1 else ''}{scenario}, {trials} × "
            f"{workload.measured_s:.0f} s")


def _verdict(plan: MechanismPlan, gain: float, low: float,
             high: float) -> tuple[Outcome, str]:
    """The outcome, and the verdict that says it with the figures."""
    shown = f"{gain:.2f}× {plan.metric_label}"
    if math.isnan(gain):
        return "too close to call", "too close to call: a variant has no figure"
    if math.isnan(low):
        return "too close to call", (f"too close to call: {shown} from one paired trial, "
                                     "without an interval (run --trials 3 or more)")
    interval = f"{shown} [{low:.2f}, {high:.2f}]"
    if low > 1:
        return "helps", f"helps: {interval}"
    if high < 1:
        return "hurts", f"hurts: {interval}"
    return "too close to call", f"too close to call: {interval} includes 1"


def _notes(plan: MechanismPlan, figures: dict[str, dict[str, Any]]) -> list[str]:
    notes = []
    for stack, pooled in figures.items():
        offered, answered = pooled.get("offered_qps"), pooled.get("throughput_qps")
        if plan.saturated and offered and answered and answered >= SATURATED * offered:
            notes.append(f"{stack} answered {answered:.1f} of the {offered:.1f} QPS offered: "
                         "not saturated, its figure is a lower bound")
        lag = pooled.get("send_lag_p99_s")
        if not plan.saturated and lag is not None and lag > LATE_SENDS_S:
            notes.append(f"{stack}: the load generator sent late (send lag P99 "
                         f"{lag * 1000:.0f} ms); latency from schedule includes that wait")
    return notes


def mechanism_result(root: Path, plan: MechanismPlan) -> MechanismResult | None:
    """The mechanism's gain from its run folder; None until both variants have a trial."""
    part = root / plan.name
    if not (part / "summary.json").is_file():
        return None
    workload = _workload(part)
    off_name, on_name = _stacks(part)[:2]
    off, off_trials, off_pooled = _variant(part, off_name, plan, workload)
    on, on_trials, on_pooled = _variant(part, on_name, plan, workload)
    pairs = [(a, b) for a, b in zip(on_trials, off_trials, strict=False)
             if math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0]
    if not pairs:
        return None
    ratio = ratio_interval([a for a, _ in pairs], [b for _, b in pairs])
    if plan.higher_is_better:
        gain, low, high = ratio.value, ratio.low, ratio.high
    else:
        gain, low, high = 1 / ratio.value, 1 / ratio.high, 1 / ratio.low
    outcome, verdict = _verdict(plan, gain, low, high)
    calibrated = calibration_folder(root, plan.name)
    calibration = (saturated_throughput(calibrated)
                   if (calibrated / "summary.json").is_file() else None)
    return MechanismResult(
        mechanism=plan.name, label=plan.label, bottleneck=plan.bottleneck,
        setting=_setting(plan, workload, _replicas(part, off_name), len(pairs), calibration),
        metric=plan.metric, metric_label=plan.metric_label, unit=plan.unit,
        per_replica=plan.per_replica, higher_is_better=plan.higher_is_better, off=off, on=on,
        ratio=ratio.value, ratio_ci_low=ratio.low, ratio_ci_high=ratio.high, gain=gain,
        gain_ci_low=low, gain_ci_high=high, outcome=outcome, verdict=verdict,
        notes=_notes(plan, {off_name: off_pooled, on_name: on_pooled}), part=plan.name)


def mechanisms_from_folder(root: Path) -> Mechanisms:
    run = read_result(root / "run.json", RunInfo).model_dump()
    results, pending = [], []
    for name in run["mechanisms"]:
        result = mechanism_result(root, PLANS[name])
        if result is None:
            pending.append(name)
        else:
            results.append(result)
    return Mechanisms(run=root.name, baseline=run["baseline"], source=run["source"],
                      mechanisms=results, pending=pending)
