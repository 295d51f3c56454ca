"""Logs a saved `harness mechanisms` folder to MLflow: each mechanism's run folder as the
comparison it is (`harness.report.tracking`), then one run over them all.

    parent  (tags harness.kind=mechanisms, harness.role=mechanisms,
             harness.gain.<mechanism> = helps | hurts | too close to call)
      params    the command's options, environment
      metrics   gain.<mechanism>.value, .ci_low, .ci_high (> 1: it helps);
                ratio.<mechanism>.value, .ci_low, .ci_high (on ÷ off, in its own figure)
      tags      harness.part.<mechanism> = the run id of its comparison
      artifacts mechanisms.json, run.json, specs/, figures/mechanisms.html (the waterfall)

Idempotent and redacted like the comparison's logging, whose store helpers it shares.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from harness.experiments.mechanisms_summary import (
    MECHANISMS_FILE,
    calibration_folder,
    mechanisms_from_folder,
)
from harness.experiments.recover import needs_recovery, recover_run
from harness.report.figures import figures_html, mechanisms_waterfall
from harness.report.mechanisms_results import Mechanisms
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
    log_results,
    redacted_copy,
    store_errors,
    to_millis,
    tracking_uri,
)

ROLE = "mechanisms"


def gain_metrics(mechanisms: Mechanisms) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for result in mechanisms.mechanisms:
        for prefix, values in (("gain", (result.gain, result.gain_ci_low, result.gain_ci_high)),
                               ("ratio", (result.ratio, result.ratio_ci_low,
                                          result.ratio_ci_high))):
            for key, value in zip(("value", "ci_low", "ci_high"), values, strict=True):
                if value is not None:
                    metrics[f"{prefix}.{result.mechanism}.{key}"] = value
    return metrics


def log_mechanisms(path: Path, experiment: str | None = None, uri: str | None = None) -> str:
    """Log a mechanisms folder (idempotent); the id of its top run."""
    run = read_result(path / "run.json", RunInfo)
    # Rebuilt from the folder: a run cut short before its summary was rewritten still logs
    # every mechanism it finished.
    mechanisms = mechanisms_from_folder(path)
    mechanisms.write(path / MECHANISMS_FILE)
    name = experiment or run.experiment or ROLE
    uri = uri or tracking_uri()
    parts: dict[str, str] = {}
    for result in mechanisms.mechanisms:
        folder = path / result.part
        if needs_recovery(folder):  # its last trial cut short: summarized from its records
            recover_run(folder)
        parts[result.mechanism] = log_results(folder, name, uri)
        calibrated = calibration_folder(path, result.mechanism)
        if (calibrated / "summary.json").is_file():
            log_results(calibrated, name, uri)
    with store_errors(path, uri):
        mlflow = client(uri)
        experiment_key = experiment_id(mlflow, name)
        found = find_logged(mlflow, experiment_key, run.results_id, ROLE)
        if found is not None:
            return found
        redact = Redactor()
        started = to_millis(run.started, time.time())
        tags = {KIND_TAG: ROLE, ROLE_TAG: ROLE, RESULTS_TAG: run.results_id,
                "harness.baseline": mechanisms.baseline, "harness.source": mechanisms.source,
                "harness.stacks": f"{mechanisms.baseline} + {mechanisms.source}'s settings",
                "harness.results_dir": str(path),
                **{f"harness.gain.{result.mechanism}": result.outcome
                   for result in mechanisms.mechanisms},
                **{f"harness.part.{mechanism}": run_id for mechanism, run_id in parts.items()}}
        parent = mlflow.create_run(experiment_key, start_time=started, run_name=path.name,
                                   tags=redact.mapping(tags))
        run_id = parent.info.run_id
        log_params(mlflow, run_id, redact, {
            **flatten(run.model_dump(mode="json", exclude={"environment"}), "run."),
            **environment_params(run.environment)})
        log_metrics(mlflow, run_id, gain_metrics(mechanisms), started)
        with redacted_copy([path / MECHANISMS_FILE, path / "run.json", path / "specs"],
                           redact) as staged:
            mlflow.log_artifacts(run_id, str(staged))
        with tempfile.TemporaryDirectory(prefix="harness-figures-") as temp:
            page = Path(temp) / "mechanisms.html"
            page.write_text(figures_html({"waterfall": mechanisms_waterfall(mechanisms)},
                                         f"{path.name}: each optimization alone"))
            mlflow.log_artifact(run_id, str(page), "figures")
        mlflow.set_tag(run_id, COMPLETE_TAG, "complete")
        mlflow.set_terminated(run_id, "FINISHED")
        return str(run_id)

