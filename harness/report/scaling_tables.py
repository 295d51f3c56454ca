"""The scaling tables of a run whose scenario scales, formatted once for the CLI and the
dashboard (`harness.report.tables.ReportTable`): each stack's scaling metrics, and with
`--ablate-scaling` the studied policy's ratios to the others, each against its goal."""

from __future__ import annotations

from dataclasses import dataclass

from harness.report.results import ComparisonSummary
from harness.report.scaling_results import Scaling
from harness.report.tables import NONE, ReportTable, missing, show, show_ratio

# (field, label, unit: "ms", "s" or "" for a count)
ROWS = (("slo_violating_s", "SLO-violating seconds", "s"),
        ("latency_p99_peak_s", "P99 during the spikes", "ms"),
        ("replica_seconds", "replica-seconds (cost)", "s"),
        ("scale_ups", "scale-ups per trial", ""),
        ("scale_downs", "scale-downs per trial", ""),
        ("cold_starts", "cold starts per trial", ""),
        ("cold_start_s_median", "cold start, median", "s"),
        ("cold_start_s_max", "cold start, slowest", "s"),
        ("failed_by_scaling", "requests failed by scaling", ""))


@dataclass(frozen=True, slots=True)
class Goal:
    """An asymmetric policy's goal: its figure ÷ another policy's at most (or below) `bound`."""

    compared: str  # the other policy
    metric: str
    bound: float
    strict: bool = False

    def judge(self, ratio: float | None) -> str:
        if ratio is None or missing(ratio):
            return NONE
        return "met" if (ratio < self.bound if self.strict else ratio <= self.bound) \
            else "missed"

    @property
    def shown(self) -> str:
        return f"{'<' if self.strict else '≤'} {self.bound:g}×"


GOALS = (Goal("symmetric", "slo_violating_s", 0.5), Goal("symmetric", "replica_seconds", 1.3),
         Goal("static", "replica_seconds", 1.0, strict=True))


def goal_for(policy: str, compared: str, metric: str) -> Goal | None:
    """The goal a ratio of `policy` (the studied stack's) to `compared` is held to, if any."""
    if policy != "asymmetric":
        return None
    return next((g for g in GOALS if g.compared == compared and g.metric == metric), None)


def shown(value: float | None, unit: str) -> str:
    """Seconds to a tenth, counts as they are (a mean over trials may be fractional)."""
    if missing(value):
        return NONE
    assert value is not None
    if unit == "ms":
        return show(value, "ms")
    return f"{value:,.1f} s" if unit == "s" else f"{value:,.4g}"


def scaling_table(summary: ComparisonSummary) -> ReportTable | None:
    reports: dict[str, Scaling] = {name: figures.scaling for name, figures
                                   in summary.stacks.items() if figures.scaling is not None}
    if not reports:
        return None
    rows = [["policy", *[r.policy for r in reports.values()]]]
    for field, label, unit in ROWS:
        rows.append([label, *[shown(getattr(r, field), unit) for r in reports.values()]])
    return ReportTable(f"scenario {summary.scenario} · scaling", ["metric", *reports], rows,
                       left=("metric",))


def scaling_ratio_table(summary: ComparisonSummary) -> ReportTable | None:
    ablation = summary.scaling_ablation
    if ablation is None:
        return None
    rows = []
    for policy, ratios in ablation.ratios.items():
        for metric, value in ratios.items():
            goal = goal_for(ablation.policy, policy, metric)
            rows.append([f"{ablation.stack} ÷ {ablation.variants[policy]}", metric,
                         show_ratio(value), NONE if goal is None else goal.shown,
                         NONE if goal is None else goal.judge(value)])
    if "static" in ablation.variants and ablation.policy == "asymmetric":
        rows.append(same_slo_row(summary, ablation.stack, ablation.variants["static"]))
    return ReportTable(f"--ablate-scaling · {ablation.stack} ({ablation.policy}) against the "
                       "other policies", ["pair", "metric", "ratio", "goal", "verdict"], rows,
                       left=("pair", "metric", "verdict"))


def same_slo_row(summary: ComparisonSummary, studied: str, static: str) -> list[str]:
    """Against static provisioning the goal is also "the same SLO": both stacks' P99 over the
    whole window within it."""
    slo_s = summary.slo_s
    p99 = [summary.stacks[name].latency_p99_s for name in (studied, static)]
    known = [float(value) for value in p99 if value is not None and not missing(value)]
    verdict = NONE if len(known) < 2 else \
        ("met" if max(known) <= slo_s else "missed")
    return [f"{studied} vs {static}", "P99 overall",
            f"{show(p99[0], 'ms')} vs {show(p99[1], 'ms')}", f"both ≤ {show(slo_s, 'ms')}",
            verdict]
