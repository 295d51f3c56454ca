"""The dashboard's side-by-side table: each stack's headline figures, each other stack's ratio
to the baseline, and which stack wins. Read from the run's summary, never recomputed."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

# (summary key, label, unit, higher is better)
HEADLINE = [
    ("throughput_qps", "throughput", "QPS", True),
    ("latency_p50_s", "latency P50", "ms", False),
    ("latency_p99_s", "latency P99", "ms", False),
    ("latency_p999_s", "latency P99.9", "ms", False),
    ("success_rate", "success rate", "%", True),
    ("goodput_qps", "goodput (within SLO)", "QPS", True),
]
TIE = "tie"
# A stack wins a metric only when it beats every other by more than this fraction: at an
# offered load both stacks can carry, throughputs differ by run-to-run noise, not by merit.
WIN_MARGIN = 0.02


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    return float(value)


def display(value: float, unit: str) -> float:
    """A summary value in the unit the table shows."""
    if unit == "ms":
        return value * 1000
    if unit == "%":
        return value * 100
    return value


def winner(values: dict[str, float], higher_is_better: bool) -> str:
    known = {stack: value for stack, value in values.items() if not math.isnan(value)}
    if len(known) < 2:
        return "–"
    ranked = sorted(known.items(), key=lambda item: item[1], reverse=higher_is_better)
    (leader, best), (_, runner_up) = ranked[0], ranked[1]
    scale = max(abs(best), abs(runner_up))
    if scale == 0 or abs(best - runner_up) / scale <= WIN_MARGIN:
        return TIE
    return leader


def comparison_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per headline metric: a column per stack (in the row's unit), `<stack> ÷
    <baseline>` per other stack, and `winner`."""
    stacks: dict[str, dict[str, Any]] = summary.get("stacks", {})
    baseline = summary.get("baseline") or next(iter(stacks), "")
    rows = []
    for key, label, unit, higher_is_better in HEADLINE:
        values = {stack: _number(figures.get(key)) for stack, figures in stacks.items()}
        row: dict[str, Any] = {"metric": label, "unit": unit}
        row.update({stack: display(value, unit) for stack, value in values.items()})
        for stack in stacks:
            if stack != baseline:
                base = values.get(baseline, math.nan)
                row[f"{stack} ÷ {baseline}"] = (values[stack] / base
                                               if base and not math.isnan(base) else math.nan)
        row["winner"] = winner(values, higher_is_better)
        rows.append(row)
    return pd.DataFrame(rows)
