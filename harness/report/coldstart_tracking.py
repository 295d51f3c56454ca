"""Logs a saved `harness coldstart` folder to MLflow: one run.

    run  (tags harness.kind=coldstart, harness.role=coldstart, harness.stacks)
      params    the command's options, environment
      metrics   <stack>.<cache>.<phase>.value, .ci_low, .ci_high (seconds; fetched_fraction);
                ratio.<cache>.<phase>.value, .ci_low, .ci_high (eager ÷ lazy)
      artifacts coldstart.json, starts.jsonl, run.json, specs/, figures/coldstart.html

Idempotent and redacted like the other kinds' logging, whose store helpers it shares.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from harness.report.coldstart_results import COLDSTART_FILE, ColdStartResult, PhaseFigure
from harness.report.figures import coldstart_bars, figures_html
from harness.report.redact import Redactor
from harness.report.results import RunInfo, read_result
from harness.report.tracking import (
    COMPLETE_TAG,
    KIND_TAG,
    RESULTS_TAG,
    ROLE_TAG,
    client,
    environment_params,
    experiment_id,
    find_logged,
    flatten,
    log_metrics,
    log_params,
    redacted_copy,
    store_errors,
    to_millis,
    tracking_uri,
)

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
    for ratio in result.ratios:
        metrics |= {f"ratio.{ratio.cache}.{ratio.phase}.{key}": value
                    for key, value in (("value", ratio.value), ("ci_low", ratio.ci_low),
                                       ("ci_high", ratio.ci_high)) if value is not None}
    return metrics


def log_coldstart(path: Path, experiment: str | None = None, uri: str | None = None) -> str:
    """Log a coldstart folder (idempotent); the id of its run."""
    run = read_result(path / "run.json", RunInfo)
    result = read_result(path / COLDSTART_FILE, ColdStartResult)
    name = experiment or run.experiment or ROLE
    uri = uri or tracking_uri()
    with store_errors(path, uri):
        mlflow = client(uri)
        experiment_key = experiment_id(mlflow, name)
        found = find_logged(mlflow, experiment_key, run.results_id, ROLE)
        if found is not None:
            return found
        redact = Redactor()
        started = to_millis(run.started, time.time())
        tags = {KIND_TAG: ROLE, ROLE_TAG: ROLE, RESULTS_TAG: run.results_id,
                "harness.stacks": ", ".join(result.stacks), "harness.results_dir": str(path)}
        created = mlflow.create_run(experiment_key, start_time=started, run_name=path.name,
                                    tags=redact.mapping(tags))
        run_id = created.info.run_id
        log_params(mlflow, run_id, redact, {
            **flatten(run.model_dump(mode="json", exclude={"environment"}), "run."),
            **environment_params(run.environment)})
        log_metrics(mlflow, run_id, coldstart_metrics(result), started)
        artifacts = [path / COLDSTART_FILE, path / "starts.jsonl", path / "run.json",
                     path / "specs"]
        with redacted_copy([item for item in artifacts if item.exists()], redact) as staged:
            mlflow.log_artifacts(run_id, str(staged))
        with tempfile.TemporaryDirectory(prefix="harness-figures-") as temp:
            page = Path(temp) / "coldstart.html"
            page.write_text(figures_html({"phases": coldstart_bars(result)},
                                         f"{path.name}: cold start"))
            mlflow.log_artifact(run_id, str(page), "figures")
        mlflow.set_tag(run_id, COMPLETE_TAG, "complete")
        mlflow.set_terminated(run_id, "FINISHED")
        return str(run_id)
