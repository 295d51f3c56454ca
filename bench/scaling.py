"""Autoscaling: the issue's goals as ratios measured in one run.

Runs `harness run --stacks optimized --scenario double_spike --ablate-scaling` (the studied
stack's own policy, asymmetric, against symmetric and static on the same schedule, trials
interleaved), or reads a finished one (`--from results/<run>`), and prints each policy's
scaling metrics, then:

- SLO-violating seconds, asymmetric ÷ symmetric (goal ≤ 0.5×);
- replica-seconds, asymmetric ÷ symmetric (goal ≤ 1.3×);
- requests failed by a scaling action (goal 0);
- against static provisioning for the peak: replica-seconds, asymmetric ÷ static (goal < 1×),
  with each one's SLO-violating seconds and overall P99 beside it.

    .venv/bin/python bench/scaling.py [--stack optimized] [--scenario double_spike] \\
        [--trials 1] [--from DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli_output import err
from harness.experiments.run import RunConfig, run_experiment
from harness.report.progress import RunProgress
from harness.report.results import ComparisonSummary, read_result
from harness.report.scaling_results import Scaling
from harness.report.scaling_tables import GOALS, same_slo_row, shown
from harness.report.tables import show, show_ratio


def policy_lines(summary: ComparisonSummary) -> list[str]:
    lines = []
    for name, figures in summary.stacks.items():
        scaling = figures.scaling
        if scaling is None:
            continue
        lines.append(f"{name} ({scaling.policy}): {shown(scaling.slo_violating_s, 's')} "
                     f"SLO-violating, P99 {show(figures.latency_p99_s, 'ms')} overall and "
                     f"{show(scaling.latency_p99_peak_s, 'ms')} in the spikes, "
                     f"{shown(scaling.replica_seconds, 's')} replica-seconds, "
                     f"{shown(scaling.scale_ups, '')} up / {shown(scaling.scale_downs, '')} "
                     f"down, cold starts {shown(scaling.cold_start_s_median, 's')} (median), "
                     f"failed by scaling {scaling.failed_by_scaling}")
    return lines


def goal_lines(summary: ComparisonSummary) -> list[str]:
    """Each goal with its ratio and verdict, judged as the ratio table judges them."""
    ablation = summary.scaling_ablation
    if ablation is None:
        return ["no --ablate-scaling in this run: no ratios"]
    lines = []
    for goal in GOALS:
        ratio = ablation.ratios.get(goal.compared, {}).get(goal.metric)
        lines.append(f"{goal.metric}, {ablation.policy} ÷ {goal.compared}: "
                     f"{show_ratio(ratio)} (goal {goal.shown}: {goal.judge(ratio)})")
    reports: list[Scaling] = [f.scaling for f in summary.stacks.values() if f.scaling]
    failed = sum(report.failed_by_scaling for report in reports)
    lines.append(f"requests failed by scaling, every policy: {failed} (goal 0: "
                 f"{'met' if failed == 0 else 'missed'})")
    lines.append(same_slo_line(summary, ablation.stack, ablation.variants.get("static")))
    return lines


def same_slo_line(summary: ComparisonSummary, studied: str, static: str | None) -> str:
    if static is None:
        return "the same SLO as static: no static variant in this run"
    row = same_slo_row(summary, studied, static)
    return f"the same SLO as static ({row[4]}): P99 overall {row[2]}, goal {row[3]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="optimized")
    parser.add_argument("--scenario", default="double_spike")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--from", dest="done", type=Path, default=None,
                        help="a finished `harness run --ablate-scaling` results folder")
    args = parser.parse_args()
    if args.done:
        path = args.done / "summary.json"
    else:
        with RunProgress(err) as progress:
            path = run_experiment(RunConfig(stacks=[args.stack], scenario=args.scenario,
                                            ablate_scaling=True, trials=args.trials), progress)
    summary = read_result(path, ComparisonSummary)
    for line in [f"run: {path.parent}", *policy_lines(summary), *goal_lines(summary)]:
        print(line)  # noqa: T201 - a benchmark prints its figures


if __name__ == "__main__":
    main()
