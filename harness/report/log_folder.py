"""`harness log DIR`: a results folder of any kind logged to MLflow, by what its run.json says
it is. A `harness run` cut short is first summarized from what reached disk
(`harness.experiments.recover`), so that what it measured is logged too."""

from __future__ import annotations

from pathlib import Path

from harness.experiments.recover import needs_recovery, recover_run
from harness.report.capacity_tracking import log_capacity
from harness.report.coldstart_tracking import log_coldstart
from harness.report.mechanisms_tracking import log_mechanisms
from harness.report.results import RunInfo, read_result
from harness.report.saved import results_folder
from harness.report.tracking import log_quality, log_results


def log_saved(path: Path, experiment: str | None = None, uri: str | None = None) -> str:
    """Log a results folder (idempotent); the id of its top MLflow run."""
    run = read_result(results_folder(path) / "run.json", RunInfo)
    if run.kind in ("capacity", "scorecard"):
        return log_capacity(path, experiment, uri)
    if run.kind == "mechanisms":
        return log_mechanisms(results_folder(path), experiment, uri)
    if run.kind == "coldstart":
        return log_coldstart(results_folder(path), experiment, uri)
    if run.kind == "quality":
        return log_quality(path / "quality.json", experiment, uri)
    if needs_recovery(path):
        recover_run(path)
    return log_results(path, experiment, uri)
