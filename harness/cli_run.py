"""`harness run`: the command's shell (registered by `harness.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli_output import (
    LOG_HINT,
    STACKS_HELP,
    WORKLOAD_HELP,
    err,
    make_config,
    report,
    stack_list,
)
from harness.experiments.run import RunConfig, run_experiment
from harness.report.progress import RunProgress
from harness.report.reliability_tables import failures_table, faults_table, reliability_table
from harness.report.results import ComparisonSummary, read_result
from harness.report.scaling_tables import scaling_ratio_table, scaling_table
from harness.report.tables import ablation_table, comparison_table, late_sender_warnings
from harness.signals import interrupt_keeps, stop_signals_interrupt


def run(
    stacks: Annotated[str, typer.Option(help=STACKS_HELP)] = "diy,optimized",
    workload: Annotated[str, typer.Option(help=WORKLOAD_HELP)] = "writing_assistant",
    rate: Annotated[float | None, typer.Option(help="steady QPS (replaces stages)")] = None,
    duration: Annotated[float | None, typer.Option(help="measured seconds")] = None,
    rate_scale: Annotated[float, typer.Option(
        help="every rate of the schedule × this (--rate's too), its times unchanged: fits a "
             "shape to this machine's capacity (calibration levels: docs/projection.md)")] = 1.0,
    trials: Annotated[int, typer.Option(help="trials per stack, interleaved A B A B")] = 1,
    workers: Annotated[int, typer.Option(help="Locust workers (0: one process)")] = 0,
    out: Annotated[Path | None, typer.Option(help="results folder (new or empty)")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment to log to (default: the workload's name)")] = None,
    ablate: Annotated[bool, typer.Option(
        "--ablate", help="also run the last stack with each of its optimizations turned off, "
                         "one at a time, and show what each contributes")] = False,
    scenario: Annotated[str | None, typer.Option(
        help="what happens during every trial: a name under workloads/scenarios/ (faults: "
             "replica_kill, replica_hang, replica_slow, overload; load shapes the autoscalers "
             "act on: spike, double_spike, ramp, sinusoid) or a YAML path")] = None,
    ablate_scaling: Annotated[bool, typer.Option(
        "--ablate-scaling", help="also run the last stack under each other autoscaling policy "
                                 "(static at its most replicas, symmetric, asymmetric)")] = False,
) -> None:
    """Replay one schedule against each stack in turn and compare them side by side."""
    config = make_config(RunConfig, stacks=stack_list(stacks), workload=workload,
                         rate_qps=rate, duration_s=duration, rate_scale=rate_scale,
                         trials=trials, workers=workers,
                         out=out, experiment=experiment, ablate=ablate, scenario=scenario,
                         ablate_scaling=ablate_scaling)
    with stop_signals_interrupt(), interrupt_keeps("run", LOG_HINT), RunProgress(err) as progress:
        summary_path = run_experiment(config, progress)
    summary = read_result(summary_path, ComparisonSummary)
    report(summary_path, [comparison_table(summary), ablation_table(summary),
                          reliability_table(summary), faults_table(summary),
                          failures_table(summary), scaling_table(summary),
                          scaling_ratio_table(summary)], late_sender_warnings(summary))
