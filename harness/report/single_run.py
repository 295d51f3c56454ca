"""One MLflow run for a results folder whose kind logs a single run over its own summary (the
mechanisms' parent, a cold-start run): found again if already logged, otherwise created with
its tags, the command's options and the environment as params, its metrics, its files (redacted)
and a page of figures, then marked complete."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from harness.report.figures import figures_html
from harness.report.redact import Redactor
from harness.report.results import RunInfo
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
)


@dataclass(frozen=True)
class SingleRun:
    role: str  # also its kind
    tags: Mapping[str, str]
    metrics: Mapping[str, float]
    files: Sequence[Path]  # logged at the artifact root; missing ones are skipped
    figures: Mapping[str, go.Figure] = field(default_factory=dict)
    page: str = ""  # figures/<page>.html, titled `title`
    title: str = ""


def log_single_run(path: Path, run: RunInfo, experiment: str, uri: str,
                   logged: SingleRun) -> str:
    """Log it (idempotent: a run already logged for this folder is returned as it is)."""
    with store_errors(path, uri):
        mlflow = client(uri)
        experiment_key = experiment_id(mlflow, experiment)
        found = find_logged(mlflow, experiment_key, run.results_id, logged.role)
        if found is not None:
            return found
        redact = Redactor()
        started = to_millis(run.started, time.time())
        tags = {KIND_TAG: logged.role, ROLE_TAG: logged.role, RESULTS_TAG: run.results_id,
                "harness.results_dir": str(path), **logged.tags}
        created = mlflow.create_run(experiment_key, start_time=started, run_name=path.name,
                                    tags=redact.mapping(tags))
        run_id = created.info.run_id
        log_params(mlflow, run_id, redact, {
            **flatten(run.model_dump(mode="json", exclude={"environment"}), "run."),
            **environment_params(run.environment)})
        log_metrics(mlflow, run_id, logged.metrics, started)
        with redacted_copy([item for item in logged.files if item.exists()], redact) as staged:
            mlflow.log_artifacts(run_id, str(staged))
        if logged.figures:
            with tempfile.TemporaryDirectory(prefix="harness-figures-") as temp:
                page = Path(temp) / f"{logged.page}.html"
                page.write_text(figures_html(logged.figures, logged.title))
                mlflow.log_artifact(run_id, str(page), "figures")
        mlflow.set_tag(run_id, COMPLETE_TAG, "complete")
        mlflow.set_terminated(run_id, "FINISHED")
        return str(run_id)

