"""Logs a saved `harness capacity` or `harness scorecard` folder to MLflow, like a comparison:
one parent run, one child per stack and trial.

    parent  (tags harness.kind=capacity, harness.role=capacity)
      params    workload, SLO, search settings, environment
      metrics   <stack>.capacity_qps, .per_replica_capacity_qps, .ci_low, .ci_high;
                ratio.<stack>.value, .ci_low, .ci_high (÷ the baseline); with --ablate,
                ablation.<optimization>.value, .ci_low, .ci_high (full ÷ without it)
      artifacts summary.json, run.json, specs/, schedules/, figures/capacity.html (the capacity
                bars, latency and success against offered load, with the SLO)
    a scorecard's parent has harness.role=scorecard, and also
      metrics   score.<dimension>.<stack>.value, .ci_low, .ci_high; score.<dimension>.ratio,
                .ratio_ci_low, .ratio_ci_high; score.send_lag_worst_p99_s;
                score.machine.python_spread, .memory_spread
      tags      harness.score.<dimension> = the row's winner, "alike", or "none"
      artifacts scorecard.json
    child   (harness.role=capacity_trial, harness.stack, harness.trial; mlflow.parentRunId)
      params    the stack spec flattened, workload, environment
      metrics   that search's capacity_qps and failing_qps; each probe as a step:
                probe.rate_qps, probe.latency_p50_s, probe.latency_p99_s, probe.success_rate,
                probe.passed
      artifacts probes/probe-<i>/records.parquet, logs/ (stack logs, each probe's Locust log);
                a scorecard's phases/<phase>/records.parquet and logs/<phase>/

Idempotent and redacted like `harness.report.tracking`, whose store helpers it shares.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from harness.experiments.scorecard_summary import SCORECARD_FILE
from harness.report.figures import capacity_figures, figures_html
from harness.report.redact import Redactor
from harness.report.results import (
    CapacitySummary,
    ProbeRow,
    RunInfo,
    TrialCapacity,
    read_result,
)
from harness.report.saved import results_folder
from harness.report.scorecard_results import Scorecard
from harness.report.tracking import (
    COMPLETE_TAG,
    KIND_TAG,
    PARENT_TAG,
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

PROBE_SERIES = ("rate_qps", "latency_p50_s", "latency_p99_s", "success_rate", "passed")


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and not math.isnan(value):
        return float(value)
    return None


def capacity_metrics(summary: CapacitySummary) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for stack, row in summary.stacks.items():
        for key in ("capacity_qps", "per_replica_capacity_qps", "ci_low", "ci_high",
                    "per_replica_ci_low", "per_replica_ci_high"):
            if (value := number(getattr(row, key))) is not None:
                metrics[f"{stack}.{key}"] = value
    shares = summary.ablation.contributions if summary.ablation else {}
    for prefix, ratios in (("ratio", summary.ratios), ("ablation", shares)):
        for name, ratio in ratios.items():
            for key in ("value", "ci_low", "ci_high"):
                if (value := number(getattr(ratio, key))) is not None:
                    metrics[f"{prefix}.{name}.{key}"] = value
    return metrics


def scorecard_metrics(scorecard: Scorecard | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for row in scorecard.rows if scorecard is not None else []:
        for stack, figure in row.stacks.items():
            for key in ("value", "ci_low", "ci_high"):
                if (value := number(getattr(figure, key))) is not None:
                    metrics[f"score.{row.dimension}.{stack}.{key}"] = value
        for key in ("ratio", "ratio_ci_low", "ratio_ci_high"):
            if (value := number(getattr(row, key))) is not None:
                metrics[f"score.{row.dimension}.{key}"] = value
    lag = scorecard.send_lag if scorecard is not None else None
    if lag is not None and (worst := number(lag.worst_p99_s)) is not None:
        metrics["score.send_lag_worst_p99_s"] = worst
    machine = scorecard.machine if scorecard is not None else None
    for name, yardstick in (machine.yardsticks if machine is not None else {}).items():
        if (spread := number(yardstick.spread)) is not None:
            metrics[f"score.machine.{name}_spread"] = spread
    return metrics


def scorecard_tags(scorecard: Scorecard | None) -> dict[str, str]:
    return {f"harness.score.{row.dimension}": row.winner or ("alike" if row.alike else "none")
            for row in (scorecard.rows if scorecard is not None else [])}


class CapacityLogger:
    def __init__(self, path: Path, mlflow: Any, experiment: str, run: RunInfo,
                 summary: CapacitySummary) -> None:
        self.path = path
        self.mlflow = mlflow
        self.experiment_id = experiment_id(mlflow, experiment)
        self.run = run
        self.summary = summary
        self.redact = Redactor()
        self.results_id = run.results_id
        self.role = "scorecard" if run.kind == "scorecard" else "capacity"
        scorecard = path / SCORECARD_FILE
        self.scorecard = (read_result(scorecard, Scorecard)
                          if self.role == "scorecard" and scorecard.is_file() else None)
        self.tags = {KIND_TAG: self.role, RESULTS_TAG: self.results_id,
                     "harness.workload": summary.workload,
                     "harness.stacks": ",".join(summary.stacks),
                     "harness.baseline": summary.baseline}
        workload = yaml.safe_load((path / "specs" / "workload.yaml").read_text()) or {}
        self.shared_params = {**flatten(workload, "workload."),
                              **flatten(summary.slo.model_dump(), "slo."),
                              **flatten(summary.search.model_dump(), "search."),
                              **environment_params(run.environment)}
        self.started = to_millis(run.started, time.time())
        self.finished = int((path / "summary.json").stat().st_mtime * 1000)

    def log(self) -> str:
        found = find_logged(self.mlflow, self.experiment_id, self.results_id, self.role)
        if found is not None:
            return found
        parent = self.mlflow.create_run(
            self.experiment_id, start_time=self.started, run_name=self.path.name,
            tags=self.redact.mapping({**self.tags, ROLE_TAG: self.role,
                                      "harness.results_dir": str(self.path),
                                      **scorecard_tags(self.scorecard)}))
        parent_id = parent.info.run_id
        log_params(self.mlflow, parent_id, self.redact, {
            **self.shared_params, "trials": str(self.summary.trials),
            "stacks": ",".join(self.summary.stacks)})
        log_metrics(self.mlflow, parent_id, {**capacity_metrics(self.summary),
                                             **scorecard_metrics(self.scorecard)},
                    self.started)
        for stack, row in self.summary.stacks.items():
            for trial in row.trials:
                self.log_search(parent_id, stack, trial, row.probes)
        self.log_parent_artifacts(parent_id)
        self.mlflow.set_tag(parent_id, COMPLETE_TAG, "complete")
        self.mlflow.set_terminated(parent_id, "FINISHED", end_time=self.finished)
        return str(parent_id)

    def log_search(self, parent_id: str, stack: str, trial: TrialCapacity,
                   probes: list[ProbeRow]) -> None:
        from mlflow.entities import Metric

        number_of_trial = trial.trial
        run = self.mlflow.create_run(
            self.experiment_id, start_time=self.started,
            run_name=f"{stack}-trial-{number_of_trial}",
            tags=self.redact.mapping({**self.tags, ROLE_TAG: "capacity_trial",
                                      PARENT_TAG: parent_id, "harness.stack": stack,
                                      "harness.trial": str(number_of_trial)}))
        run_id = run.info.run_id
        spec_path = self.path / "specs" / f"{stack}.yaml"
        spec = yaml.safe_load(spec_path.read_text()) if spec_path.is_file() else {}
        log_params(self.mlflow, run_id, self.redact, {
            **self.shared_params, **flatten(spec or {"name": stack}, "stack."),
            "trial": str(number_of_trial)})
        log_metrics(self.mlflow, run_id, {
            key: value for key in ("capacity_qps", "failing_qps", "bracket_qps", "probes")
            if (value := number(getattr(trial, key))) is not None}, self.started)
        mine = [probe for probe in probes if probe.trial == number_of_trial]
        points = [Metric(f"probe.{key}", value, self.started + probe.probe, probe.probe)
                  for probe in mine for key in PROBE_SERIES
                  if (value := number(getattr(probe, key))) is not None]
        if points:
            self.mlflow.log_batch(run_id, metrics=points)
        trial_dir = self.path / stack / f"trial-{number_of_trial}"
        for probe in mine:
            self.mlflow.log_artifact(run_id, str(self.path / probe.records),
                                     f"probes/probe-{probe.probe}")
        for phase in ("load", "kill"):  # a scorecard's phases
            if (records := trial_dir / phase / "records.parquet").is_file():
                self.mlflow.log_artifact(run_id, str(records), f"phases/{phase}")
        logs = {"logs/stack": trial_dir / "logs",
                **{f"logs/{folder.parent.name}": folder
                   for folder in sorted(trial_dir.glob("*/logs"))}}
        for artifact_path, folder in logs.items():
            if folder.is_dir():
                with redacted_copy([folder], self.redact) as staged:
                    self.mlflow.log_artifacts(run_id, str(staged / folder.name), artifact_path)
        self.mlflow.set_terminated(run_id, "FINISHED", end_time=self.finished)

    def log_parent_artifacts(self, parent_id: str) -> None:
        scorecard = [self.path / SCORECARD_FILE] if self.scorecard is not None else []
        with redacted_copy([self.path / "summary.json", self.path / "run.json",
                            self.path / "specs", *scorecard], self.redact) as staged:
            self.mlflow.log_artifacts(parent_id, str(staged))
        if (self.path / "schedules").is_dir():
            self.mlflow.log_artifacts(parent_id, str(self.path / "schedules"), "schedules")
        with tempfile.TemporaryDirectory(prefix="harness-figures-") as temp:
            page = Path(temp) / "capacity.html"
            page.write_text(figures_html(capacity_figures(self.summary),
                                         f"{self.path.name}: capacity at SLO, "
                                         f"{' vs '.join(self.summary.stacks)}"))
            self.mlflow.log_artifact(parent_id, str(page), "figures")


def log_capacity(path: Path, experiment: str | None = None, uri: str | None = None) -> str:
    """Log a `harness capacity` folder (idempotent); the parent run's id."""
    run = read_result(results_folder(path) / "run.json", RunInfo)
    summary = read_result(path / "summary.json", CapacitySummary)
    name = experiment or run.experiment or summary.workload
    uri = uri or tracking_uri()
    with store_errors(path, uri):
        return CapacityLogger(path, client(uri), name, run, summary).log()
