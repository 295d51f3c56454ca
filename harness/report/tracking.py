"""Logs a saved results folder to MLflow: one parent run per comparison, one child per stack
and trial.

    parent  (tags harness.kind=comparison, harness.role=comparison)
      params    run, workload and environment (git commit, hardware, package versions)
      metrics   <stack>.<metric> over all trials, ratio.<stack>.<metric> to the baseline,
                ablation.<optimization>.<metric> (full stack ÷ variant) with --ablate
      artifacts summary.json, run.json, schedule.jsonl, specs/, figures/comparison.html
    child   (harness.role=trial, harness.stack, harness.trial; mlflow.parentRunId)
      params    the stack spec flattened (engine args included), workload, environment
      metrics   that trial's summary; per-second throughput, P99 and errors as steps
      artifacts records/trial-<k>.parquet, logs/ (replicas, balancer, load generator)

The store is `MLFLOW_TRACKING_URI` when set, else a sqlite database with an artifact folder
under `results/` (nothing to start). Results are on disk before this runs; logging the same
folder twice finds the first logging (tag `harness.results_id`) and adds nothing, and a
logging cut short is removed and done again. Secrets never leave: params, tags and text
artifacts pass through `harness.report.redact`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import TrackingError
from harness.measure.metrics import Window, per_second, summarize
from harness.measure.reliability import BALANCER_METRICS, FAULTS_FILE
from harness.measure.scaling import SCALING_DIR, fleet_per_second
from harness.report.figures import comparison_figures, figures_html
from harness.report.redact import Redactor
from harness.report.results import QualityResult, read_result
from harness.report.saved import SavedRun, TrialResult, load_saved_run, read_trials
from stacks.spec import PROJECT_ROOT

DEFAULT_STORE_DIR = PROJECT_ROOT / "results"
KIND_TAG, ROLE_TAG, RESULTS_TAG = "harness.kind", "harness.role", "harness.results_id"
COMPLETE_TAG = "harness.logged"  # set last: a parent without it was cut short
PARENT_TAG = "mlflow.parentRunId"
TIMESERIES = ("offered_qps", "throughput_qps", "latency_p99_s", "errors")
FLEET_SERIES = {"replicas_ready": "ready", "replicas_starting": "starting",
                "replicas_desired": "desired", "concurrency": "concurrency"}
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
BATCH = 100  # MLflow takes at most 100 params (1,000 metrics) per batch call
# A store that does not answer should cost seconds, not MLflow's default minutes of retries;
# and a progress bar per artifact download is noise in a log. Set only where the user has not.
ENV_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_STORE_DIR}/mlflow.db"


def default_artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside the default sqlite store; a server or
    other store decides for itself."""
    if uri == f"sqlite:///{DEFAULT_STORE_DIR}/mlflow.db":
        return (DEFAULT_STORE_DIR / "mlartifacts").as_uri()
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None


def client(uri: str | None = None) -> Any:
    """An MlflowClient for the store (imported here: MLflow takes a second to import)."""
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow: Any, name: str) -> str:
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            mlflow.restore_experiment(found.experiment_id)
        return str(found.experiment_id)
    return str(mlflow.create_experiment(
        name, artifact_location=default_artifact_root(mlflow.tracking_uri)))


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings as dotted keys; lists and scalars as their JSON text."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            flat[name] = text[:MAX_PARAM_CHARS]
    return flat


def scalar_metrics(summary: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every number of a summary (NaN and null left out), error counts and replica shares
    under `errors.` and `replica_share.`, a scenario's figures under `reliability.` and
    `scaling.`."""
    metrics: dict[str, float] = {}
    for key, value in summary.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            if not math.isnan(value):
                metrics[f"{prefix}{key}"] = float(value)
        elif isinstance(value, Mapping) and key in ("errors", "replica_share", "reliability",
                                                    "failed_by_cause", "scaling"):
            metrics.update(scalar_metrics(value, f"{prefix}{key}."))
    return metrics


def batched(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def to_millis(moment: str | None, fallback: float) -> int:
    if moment:
        try:
            return int(datetime.fromisoformat(moment).timestamp() * 1000)
        except ValueError:
            pass
    return int(fallback * 1000)


class RunLogger:
    """Logs one saved run into one experiment of one store."""

    def __init__(self, saved: SavedRun, mlflow: Any, experiment: str,
                 redactor: Redactor | None = None) -> None:
        self.saved = saved
        self.mlflow = mlflow
        self.experiment_id = experiment_id(mlflow, experiment)
        self.redact = redactor or Redactor()
        self.tags = {KIND_TAG: "comparison", RESULTS_TAG: saved.results_id,
                     "harness.workload": saved.summary.workload,
                     "harness.stacks": ",".join(saved.summary.stacks),
                     "harness.baseline": saved.summary.baseline}
        self.shared_params = {
            **flatten(saved.workload, "workload."),
            "seed": str(saved.workload.get("seed", "")),
            "schedule_sha256": saved.summary.schedule_sha256,
            **environment_params(saved.run.environment),
        }

    # -- logging --------------------------------------------------------------------------
    def log(self) -> str:
        """The parent run's id, logged now or found from an earlier logging."""
        found = find_logged(self.mlflow, self.experiment_id, self.saved.results_id,
                            "comparison")
        if found is not None:
            return found
        started = to_millis(self.saved.run.started, time.time())
        finished = int((self.saved.path / "summary.json").stat().st_mtime * 1000)
        parent = self.mlflow.create_run(
            self.experiment_id, start_time=started, run_name=self.saved.path.name,
            tags=self.redact.mapping({**self.tags, ROLE_TAG: "comparison",
                                      "harness.results_dir": str(self.saved.path)}))
        parent_id = parent.info.run_id
        self.log_params(parent_id, {**self.shared_params, **flatten(
            self.saved.run.model_dump(mode="json", exclude={"environment"}), "run.")})
        self.log_metrics(parent_id, self.comparison_metrics(), started)
        # Each trial's records are read once, for its child run and for the figures.
        frames = {trial: pd.read_parquet(trial.records_path) for trial in self.saved.trials}
        for trial, records in frames.items():
            self.log_trial(parent_id, trial, records, started, finished)
        self.log_comparison_artifacts(parent_id, frames)
        self.mlflow.set_tag(parent_id, COMPLETE_TAG, "complete")
        self.mlflow.set_terminated(parent_id, "FINISHED", end_time=finished)
        return str(parent_id)

    def comparison_metrics(self) -> dict[str, float]:
        summary = self.saved.summary
        metrics: dict[str, float] = {}
        for stack, figures in summary.stacks.items():
            metrics.update(scalar_metrics(figures.model_dump(exclude_unset=True), f"{stack}."))
        for stack, ratios in summary.ratios.items():
            metrics.update(scalar_metrics(ratios, f"ratio.{stack}."))
        shares = summary.ablation.contributions if summary.ablation else {}
        for optimization, share in shares.items():
            metrics.update(scalar_metrics(share.model_dump(), f"ablation.{optimization}."))
        scaling = summary.scaling_ablation.ratios if summary.scaling_ablation else {}
        for policy, ratios in scaling.items():
            metrics.update(scalar_metrics(ratios, f"scaling_ablation.{policy}."))
        return metrics

    def log_trial(self, parent_id: str, trial: TrialResult, records: pd.DataFrame, started: int,
                  finished: int) -> None:
        spec = self.saved.stack_specs.get(trial.stack, {"name": trial.stack})
        run = self.mlflow.create_run(
            self.experiment_id, start_time=started, run_name=f"{trial.stack}-trial-{trial.trial}",
            tags=self.redact.mapping({**self.tags, ROLE_TAG: "trial", PARENT_TAG: parent_id,
                                      "harness.stack": trial.stack,
                                      "harness.trial": str(trial.trial)}))
        run_id = run.info.run_id
        self.log_params(run_id, {**self.shared_params, **flatten(spec, "stack."),
                                 "trial": str(trial.trial)})
        # A trial cut short is measured over its stack's (shorter) window.
        window = Window(self.saved.window.start_s,
                        self.saved.summary.stacks[trial.stack].window_s)
        summary = summarize(records, window, self.saved.slo_s,
                            bool(self.saved.workload.get("stream", False)))
        self.log_metrics(run_id, scalar_metrics(summary), started)
        self.log_timeseries(run_id, records, started)
        self.mlflow.log_artifact(run_id, str(trial.records_path), "records")
        if trial.log_dir.is_dir():
            with redacted_copy([trial.log_dir], self.redact) as staged:
                self.mlflow.log_artifacts(run_id, str(staged / trial.log_dir.name), "logs")
        scaled = self.saved.path / trial.stack / SCALING_DIR / f"trial-{trial.trial}.parquet"
        if scaled.is_file():  # the autoscaler's log, on the records' clock
            self.mlflow.log_artifact(run_id, str(scaled), SCALING_DIR)
            self.log_fleet(run_id, pd.read_parquet(scaled), started)
        for played in (trial.log_dir.parent / FAULTS_FILE,
                       trial.log_dir.parent / BALANCER_METRICS):
            if played.is_file():  # a scenario's faults, the balancer's retries
                self.mlflow.log_artifact(run_id, str(played), "faults")
        self.mlflow.set_terminated(run_id, "FINISHED", end_time=finished)

    def log_timeseries(self, run_id: str, records: pd.DataFrame, started: int) -> None:
        self.log_steps(run_id, per_second(records, self.saved.window),
                       {name: name for name in TIMESERIES}, started)

    def log_fleet(self, run_id: str, scaling: pd.DataFrame, started: int) -> None:
        """The fleet per second: `timeseries.replicas_ready`... beside the load's series."""
        self.log_steps(run_id, fleet_per_second([scaling], self.saved.window), FLEET_SERIES,
                       started)

    def log_steps(self, run_id: str, seconds: pd.DataFrame, series: Mapping[str, str],
                  started: int) -> None:
        """Each column of a per-second frame as `timeseries.<name>`, one step per second."""
        from mlflow.entities import Metric

        points = [Metric(f"timeseries.{name}", float(row[column]),
                         started + int(row["second"]) * 1000, int(row["second"]))
                  for _, row in seconds.iterrows() for name, column in series.items()
                  if not math.isnan(row[column])]
        for batch in batched(points, 1000):
            self.mlflow.log_batch(run_id, metrics=batch)

    def log_comparison_artifacts(self, parent_id: str,
                                 frames: Mapping[TrialResult, pd.DataFrame]) -> None:
        path = self.saved.path
        with redacted_copy([path / "summary.json", path / "run.json", path / "specs"],
                           self.redact) as staged:
            self.mlflow.log_artifacts(parent_id, str(staged))
        if (path / "schedule.jsonl").is_file():
            self.mlflow.log_artifact(parent_id, str(path / "schedule.jsonl"))
        records = {stack: pd.concat([frame for trial, frame in frames.items()
                                     if trial.stack == stack], ignore_index=True)
                   for stack in self.saved.summary.stacks}
        scaling = {stack: read_trials(path, stack, SCALING_DIR)
                   for stack in self.saved.summary.stacks}
        figures = comparison_figures(records, self.saved.summary,
                                     {stack: frames for stack, frames in scaling.items() if frames})
        with tempfile.TemporaryDirectory(prefix="harness-figures-") as temp:
            page = Path(temp) / "comparison.html"
            page.write_text(figures_html(figures, f"{path.name}: "
                                         f"{' vs '.join(self.saved.summary.stacks)}"))
            self.mlflow.log_artifact(parent_id, str(page), "figures")

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        log_params(self.mlflow, run_id, self.redact, params)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], at: int) -> None:
        log_metrics(self.mlflow, run_id, metrics, at)


def environment_params(environment: Mapping[str, Any]) -> dict[str, str]:
    """Where a run ran (`harness.measure.environment`), as params."""
    return {"git_commit": str(environment.get("git_commit", "unknown")),
            **flatten(environment.get("hardware", {}), "hardware."),
            **flatten(environment.get("packages", {}), "packages.")}


def find_logged(mlflow: Any, experiment: str, results_id: str, role: str) -> str | None:
    """The top run of a complete earlier logging of these results; the runs of a logging
    that was cut short are deleted, so it is done again whole."""
    runs = mlflow.search_runs([experiment], f"tags.`{RESULTS_TAG}` = '{results_id}'",
                              max_results=10_000)
    for run in runs:
        if run.data.tags.get(ROLE_TAG) == role and run.data.tags.get(COMPLETE_TAG) == "complete":
            return str(run.info.run_id)
    for run in runs:
        mlflow.delete_run(run.info.run_id)
    return None


def log_params(mlflow: Any, run_id: str, redact: Redactor, params: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    clean = redact.mapping(params)
    for batch in batched([Param(key, value) for key, value in clean.items()], BATCH):
        mlflow.log_batch(run_id, params=batch)


def log_metrics(mlflow: Any, run_id: str, metrics: Mapping[str, float], at: int) -> None:
    from mlflow.entities import Metric

    points = [Metric(key, value, at, 0) for key, value in metrics.items()]
    for batch in batched(points, 1000):
        mlflow.log_batch(run_id, metrics=batch)


@contextmanager
def store_errors(path: Path, uri: str) -> Iterator[None]:
    """Whatever the store or its transport raises becomes one TrackingError naming both."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001  # the store's failures are many kinds; one answer
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise TrackingError(f"could not log {path} to the MLflow store {uri}: "
                            f"{type(exc).__name__}: {first_line}") from exc


@contextmanager
def redacted_copy(paths: Iterable[Path], redactor: Redactor) -> Iterator[Path]:
    """A temporary folder holding copies of files and folders, secrets masked in text files."""
    with tempfile.TemporaryDirectory(prefix="harness-artifacts-") as temp:
        root = Path(temp)
        for path in paths:
            if path.is_dir():
                copies = [(source, root / path.name / source.relative_to(path))
                          for source in path.rglob("*") if source.is_file()]
            else:
                copies = [(path, root / path.name)] if path.is_file() else []
            for source, target in copies:
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    text = source.read_text(encoding="utf-8")
                except UnicodeDecodeError:
                    shutil.copyfile(source, target)
                    continue
                target.write_text(redactor.text(text), encoding="utf-8")
        yield root


def log_quality(path: Path, experiment_name: str | None = None, uri: str | None = None) -> str:
    """Log a `harness quality` result (quality.json) as one run, idempotently; its id."""
    saved = read_result(path, QualityResult)
    uri = uri or tracking_uri()
    with store_errors(path, uri):
        mlflow = client(uri)
        experiment = experiment_id(mlflow, experiment_name or saved.experiment)
        results_id = saved.run_id
        found = find_logged(mlflow, experiment, results_id, "quality")
        if found is not None:
            return found
        redact = Redactor()
        verdict = quality_verdict(saved)
        run = mlflow.create_run(experiment, run_name=path.parent.name, tags=redact.mapping({
            KIND_TAG: "quality", ROLE_TAG: "quality", RESULTS_TAG: results_id,
            "harness.stacks": ",".join(saved.answers), "harness.verdict": verdict,
            "harness.results_dir": str(path.parent)}))
        run_id = run.info.run_id
        log_params(mlflow, run_id, redact, {
            **flatten(saved.config.model_dump(mode="json"), "quality."),
            **environment_params(saved.environment)})
        metrics: dict[str, float] = {}
        for comparison in saved.comparisons:
            metrics.update(scalar_metrics(comparison.model_dump(), f"{comparison.stack}."))
        log_metrics(mlflow, run_id, metrics, int(time.time() * 1000))
        with redacted_copy([path], redact) as staged:
            mlflow.log_artifact(run_id, str(staged / path.name))
        mlflow.set_tag(run_id, COMPLETE_TAG, "complete")
        mlflow.set_terminated(run_id, "FINISHED")
        return str(run_id)


def quality_verdict(result: QualityResult) -> str:
    """`pass`, `fail`, or `incomplete` for a check cut short before every stack answered."""
    if len(result.comparisons) < len(result.config.stacks) - 1:
        return "incomplete"
    return "pass" if all(comparison.passed for comparison in result.comparisons) else "fail"


def log_results(path: Path, experiment: str | None = None, uri: str | None = None) -> str:
    """Log a results folder (idempotent); the parent run's id. A store that fails raises
    TrackingError, whatever MLflow or its transport raised."""
    saved = load_saved_run(path)
    name = experiment or saved.run.experiment or saved.summary.workload
    uri = uri or tracking_uri()
    with store_errors(path, uri):
        return RunLogger(saved, client(uri), name).log()
