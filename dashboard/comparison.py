"""The dashboard's side-by-side table: each stack's headline figures, each other stack's ratio
to the baseline, and which stack wins. Read from the run's summary, never recomputed."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.ablation import ABLATION_LABELS

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
    ratios: dict[str, dict[str, Any]] = summary.get("ratios", {})
    rows = []
    for key, label, unit, higher_is_better in HEADLINE:
        values = {stack: _number(figures.get(key)) for stack, figures in stacks.items()}
        row: dict[str, Any] = {"metric": label, "unit": unit}
        row.update({stack: display(value, unit) for stack, value in values.items()})
        for stack in stacks:
            if stack != baseline:  # the ratio `harness.metrics.ratios` put in the summary
                row[f"{stack} ÷ {baseline}"] = _number(ratios.get(stack, {}).get(key))
        row["winner"] = winner(values, higher_is_better)
        rows.append(row)
    return pd.DataFrame(rows)


def ablation_frame(summary: dict[str, Any]) -> pd.DataFrame | None:
    """One row per optimization: the full stack ÷ its variant without it (throughput above 1
    and latency below 1 mean the optimization helps); None without an ablation."""
    ablation = summary.get("ablation")
    if not ablation:
        return None
    rows = [{"optimization": ABLATION_LABELS.get(name, name), "variant without it":
             row["variant"], "throughput ×": _number(row.get("throughput_qps")),
             "goodput ×": _number(row.get("goodput_qps")),
             "P50 ×": _number(row.get("latency_p50_s")),
             "P99 ×": _number(row.get("latency_p99_s")),
             "success ×": _number(row.get("success_rate"))}
            for name, row in ablation["contributions"].items()]
    return pd.DataFrame(rows)
