"""Logs a saved `harness mechanisms` folder to MLflow: each mechanism's run folder as the
comparison it is (`harness.report.tracking`), then one run over them all.

    parent  (tags harness.kind=mechanisms, harness.role=mechanisms,
             harness.gain.<mechanism> = helps | hurts | too close to call)
      params    the command's options, environment
      metrics   gain.<mechanism>.value, .ci_low, .ci_high (> 1: it helps);
                ratio.<mechanism>.value, .ci_low, .ci_high (on ÷ off, in its own figure)
      tags      harness.part.<mechanism> = the run id of its comparison
      artifacts mechanisms.json, run.json, specs/, figures/mechanisms.html (the waterfall)

Idempotent and redacted like the comparison's logging (`harness.report.single_run`).
"""

from __future__ import annotations

from pathlib import Path

from harness.experiments.mechanisms_summary import (
    MECHANISMS_FILE,
    calibration_folder,
    mechanisms_from_folder,
)
from harness.experiments.recover import needs_recovery, recover_run
from harness.report.figures import mechanisms_waterfall
from harness.report.mechanisms_results import Mechanisms
from harness.report.results import RunInfo, read_result
from harness.report.single_run import SingleRun, log_single_run
from harness.report.tracking import log_results, tracking_uri

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
    return log_single_run(path, run, name, uri, SingleRun(
        role=ROLE, tags={
            "harness.baseline": mechanisms.baseline, "harness.source": mechanisms.source,
            "harness.stacks": f"{mechanisms.baseline} + {mechanisms.source}'s settings",
            **{f"harness.gain.{result.mechanism}": result.outcome
               for result in mechanisms.mechanisms},
            **{f"harness.part.{mechanism}": run_id for mechanism, run_id in parts.items()}},
        metrics=gain_metrics(mechanisms),
        files=[path / MECHANISMS_FILE, path / "run.json", path / "specs"],
        figures={"waterfall": mechanisms_waterfall(mechanisms)}, page="mechanisms",
        title=f"{path.name}: each optimization alone"))
