"""Logs a saved `harness coldstart` folder to MLflow: one run.

    run  (tags harness.kind=coldstart, harness.role=coldstart, harness.stacks)
      params    the command's options, environment
      metrics   <stack>.<cache>.<phase>.value, .ci_low, .ci_high (seconds; fetched_fraction);
                ratio.<cache>.<phase>.value, .ci_low, .ci_high (eager ÷ lazy)
      artifacts coldstart.json, starts.jsonl, run.json, specs/, figures/coldstart.html

Idempotent and redacted like the other kinds' logging (`harness.report.single_run`).
"""

from __future__ import annotations

from pathlib import Path

from harness.report.coldstart_results import COLDSTART_FILE, ColdStartResult, PhaseFigure
from harness.report.figures import coldstart_bars
from harness.report.results import RunInfo, read_result
from harness.report.single_run import SingleRun, log_single_run
from harness.report.tracking import tracking_uri

ROLE = "coldstart"


def _figure_metrics(prefix: str, figure: PhaseFigure) -> dict[str, float]:
    values = {"value": figure.value, "ci_low": figure.ci_low, "ci_high": figure.ci_high}
    return {f"{prefix}.{key}": value for key, value in values.items() if value is not None}


def coldstart_metrics(result: ColdStartResult) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for row in result.summaries:
        for phase, figure in row.phases.items():
            metrics |= _figure_metrics(f"{row.stack}.{row.cache}.{phase}", figure)
        metrics |= _figure_metrics(f"{row.stack}.{row.cache}.fetched_fraction",
                                   row.fetched_fraction)
    lazy_stacks = len({ratio.lazy for ratio in result.ratios})
    for ratio in result.ratios:
        # Named by the lazy stack only when there are several (with and without prefetch).
        prefix = f"ratio.{ratio.lazy}." if lazy_stacks > 1 else "ratio."
        metrics |= {f"{prefix}{ratio.cache}.{ratio.phase}.{key}": value
                    for key, value in (("value", ratio.value), ("ci_low", ratio.ci_low),
                                       ("ci_high", ratio.ci_high)) if value is not None}
    return metrics


def log_coldstart(path: Path, experiment: str | None = None, uri: str | None = None) -> str:
    """Log a coldstart folder (idempotent); the id of its run."""
    run = read_result(path / "run.json", RunInfo)
    result = read_result(path / COLDSTART_FILE, ColdStartResult)
    return log_single_run(path, run, experiment or run.experiment or ROLE, uri or tracking_uri(),
                          SingleRun(
        role=ROLE, tags={"harness.stacks": ", ".join(result.stacks)},
        metrics=coldstart_metrics(result),
        files=[path / COLDSTART_FILE, path / "starts.jsonl", path / "run.json", path / "specs"],
        figures={"phases": coldstart_bars(result)}, page="coldstart",
        title=f"{path.name}: cold start"))
