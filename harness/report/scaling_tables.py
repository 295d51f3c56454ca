"""The scaling tables of a run whose scenario scales, formatted once for the CLI and the
dashboard (`harness.report.tables.ReportTable`): each stack's scaling metrics, and with
`--ablate-scaling` the studied policy's ratios to the others, each against its goal."""

from __future__ import annotations

from harness.report.results import ComparisonSummary
from harness.report.scaling_results import Scaling
from harness.report.tables import NONE, ReportTable, show, show_ratio

# (field, label, unit)
ROWS = (("slo_violating_s", "SLO-violating seconds", ""),
        ("latency_p99_peak_s", "P99 during the spikes", "ms"),
        ("replica_seconds", "replica-seconds (cost)", ""),
        ("scale_ups", "scale-ups per trial", ""),
        ("scale_downs", "scale-downs per trial", ""),
        ("cold_starts", "cold starts per trial", ""),
        ("cold_start_s_median", "cold start, median (s)", ""),
        ("cold_start_s_max", "cold start, slowest (s)", ""),
        ("failed_by_scaling", "requests failed by scaling", ""))
# The goals of an asymmetric policy, as (policy compared, metric, most its ratio may be).
GOALS = (("symmetric", "slo_violating_s", 0.5), ("symmetric", "replica_seconds", 1.3),
         ("static", "replica_seconds", 1.0))


def scaling_table(summary: ComparisonSummary) -> ReportTable | None:
    reports: dict[str, Scaling] = {name: figures.scaling for name, figures
                                   in summary.stacks.items() if figures.scaling is not None}
    if not reports:
        return None
    rows = [["policy", *[r.policy for r in reports.values()]]]
    for field, label, unit in ROWS:
        rows.append([label, *[show(getattr(r, field), unit) for r in reports.values()]])
    return ReportTable(f"scenario {summary.scenario} · scaling", ["metric", *reports], rows,
                       left=("metric",))


def scaling_ratio_table(summary: ComparisonSummary) -> ReportTable | None:
    ablation = summary.scaling_ablation
    if ablation is None:
        return None
    rows = []
    for policy, ratios in ablation.ratios.items():
        for metric, value in ratios.items():
            goal = next((most for compared, name, most in GOALS
                         if ablation.policy == "asymmetric" and compared == policy
                         and name == metric), None)
            verdict = NONE if goal is None or value is None else \
                ("met" if value <= goal else "missed")
            rows.append([f"{ablation.stack} ÷ {ablation.variants[policy]}", metric,
                         show_ratio(value), NONE if goal is None else f"≤ {goal:g}×", verdict])
    return ReportTable(f"--ablate-scaling · {ablation.stack} ({ablation.policy}) against the "
                       "other policies", ["pair", "metric", "ratio", "goal", "verdict"], rows,
                       left=("pair", "metric", "verdict"))
