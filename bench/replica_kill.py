"""Both stacks through the `replica_kill` scenario with real vLLM replicas: the issue's goal.

    .venv/bin/python bench/replica_kill.py [--rate 2] [--duration 300] [--out DIR]

Runs `harness run --stacks diy,optimized --scenario replica_kill` (replica 0's whole process
tree SIGKILLed 15 s into the window, then every 60 s) at `--rate` QPS, about half of what a
stack sustains on the embedded default, for `--duration` measured seconds, and prints per
stack: success and its 95 % lower bound, failures by cause, detect and recover times; then
optimized ÷ diy failures. Goal: optimized ≥ 99.9 % success, every failure a request in flight
on the killed replica. The results folder and MLflow run are kept as any `harness run`'s.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from harness.experiments.run import RunConfig, run_experiment
from harness.report.progress import RunProgress
from harness.report.reliability_tables import faults_table, reliability_table
from harness.report.results import ComparisonSummary, read_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=None)
    options = parser.parse_args()
    console = Console(stderr=True)
    config = RunConfig(stacks=["diy", "optimized"], rate_qps=options.rate,
                       duration_s=options.duration, scenario="replica_kill", out=options.out)
    with RunProgress(console) as progress:
        path = run_experiment(config, progress)
    summary = read_result(path, ComparisonSummary)
    out = Console()
    for table in (reliability_table(summary), faults_table(summary)):
        if table is not None:
            out.print(table.rich())
    diy, optimized = summary.stacks["diy"], summary.stacks["optimized"]
    assert optimized.reliability is not None
    causes = optimized.reliability.failed_by_cause
    only_in_flight = set(causes) <= {"in_flight"}
    success = optimized.success_rate or 0.0
    out.print(f"optimized success {success:.4%} (goal ≥ 99.9%: "
              f"{'met' if success >= 0.999 else 'not met'}); its failures all "
              f"in flight on the killed replica: {'yes' if only_in_flight else 'no'} "
              f"({causes or 'none'})")
    out.print(f"diy success {diy.success_rate or 0.0:.4%}; failed requests diy ÷ optimized: "
              f"{diy.failed_requests:,} ÷ {optimized.failed_requests:,}")
    out.print(f"summary: {path}")


if __name__ == "__main__":
    main()
