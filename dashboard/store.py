"""What the dashboard reads from the MLflow store: experiments, the comparison and capacity
runs in them, one comparison's summary and per-request records (the artifacts `harness run`
logged), one capacity run's summary (`harness capacity`), a scorecard (`harness scorecard`: a
capacity summary and its scorecard.json), each optimization alone (`harness mechanisms`: its
mechanisms.json), and cold starts phase by phase (`harness coldstart`: its coldstart.json)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from harness.errors import ResultsError
from harness.experiments.mechanisms_summary import MECHANISMS_FILE
from harness.experiments.scorecard_summary import SCORECARD_FILE
from harness.measure.scaling import SCALING_DIR
from harness.report.coldstart_results import COLDSTART_FILE, ColdStartResult
from harness.report.mechanisms_results import Mechanisms
from harness.report.results import CapacitySummary, ComparisonSummary, R
from harness.report.scorecard_results import Scorecard
from harness.report.tracking import PARENT_TAG, ROLE_TAG

RUN_TAGS = ("kind", "role", "stack", "trial", "workload", "stacks")
# The parent runs a user picks from.
SHOWN_ROLES = ("scorecard", "mechanisms", "comparison", "capacity", "coldstart")
RUN_METRICS = ("throughput_qps", "latency_p99_s", "success_rate")


@dataclass(frozen=True)
class Comparison:
    run_id: str
    name: str
    summary: ComparisonSummary
    records: dict[str, pd.DataFrame]  # stack -> every trial's records
    scaling: dict[str, list[pd.DataFrame]]  # stack -> its trials' scaling logs, where it scaled


def _shown_runs(client: Any, experiment_id: str, max_results: int) -> list[Any]:
    """Scorecards first (the page opens on the newest), then mechanisms runs (above the
    comparisons they are made of, which started after them), then the rest; newest first in
    each."""
    runs = [run for role in SHOWN_ROLES
            for run in client.search_runs([experiment_id], f"tags.`{ROLE_TAG}` = '{role}'",
                                          order_by=["attributes.start_time DESC"],
                                          max_results=max_results)]
    return sorted(runs, key=lambda run: (run.data.tags.get(ROLE_TAG) == "scorecard",
                                         run.data.tags.get(ROLE_TAG) == "mechanisms",
                                         run.info.start_time), reverse=True)


def experiments(client: Any) -> list[tuple[str, str]]:
    """(id, name) of the experiments holding comparison or capacity runs, the most recent
    first."""
    return [(str(experiment.experiment_id), str(experiment.name))
            for experiment in client.search_experiments(order_by=["last_update_time DESC"])
            if _shown_runs(client, experiment.experiment_id, 1)]


def comparisons(client: Any, experiment_id: str) -> pd.DataFrame:
    """The experiment's scorecards, then its comparison and capacity runs, newest first:
    run_id, name, started, stacks, kind (`scorecard`, `comparison` or `capacity`)."""
    return pd.DataFrame([{
        "run_id": run.info.run_id, "name": run.info.run_name,
        "started": pd.to_datetime(run.info.start_time, unit="ms"),
        "stacks": run.data.tags.get("harness.stacks", ""),
        "kind": run.data.tags.get(ROLE_TAG, ""),
    } for run in _shown_runs(client, experiment_id, 1000)],
        columns=["run_id", "name", "started", "stacks", "kind"])


def runs_table(client: Any, experiment_id: str) -> pd.DataFrame:
    """Every run of the experiment, newest first, with its harness tags (`kind`, `role`,
    `stack`, ...) and, for trials, headline metrics."""
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=5000)
    return pd.DataFrame([{
        "name": run.info.run_name, "run_id": run.info.run_id,
        "started": pd.to_datetime(run.info.start_time, unit="ms"),
        "status": run.info.status,
        **{tag: run.data.tags.get(f"harness.{tag}") for tag in RUN_TAGS},
        **{metric: run.data.metrics.get(metric) for metric in RUN_METRICS},
    } for run in runs], columns=["name", "run_id", "started", "status", *RUN_TAGS,
                                 *RUN_METRICS])


def _download_text(client: Any, run_id: str, path: str) -> str:
    with tempfile.TemporaryDirectory(prefix="dashboard-") as temp:
        return Path(client.download_artifacts(run_id, path, temp)).read_text()


def _summary(client: Any, run_id: str, model: type[R]) -> R:
    """A logged summary.json as its model; ResultsError names what it lacks."""
    try:
        return model.model_validate_json(_download_text(client, run_id, "summary.json"))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ResultsError(f"run {run_id}: its summary.json is not a {model.__name__}: "
                           f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def load_comparison(client: Any, run_id: str) -> Comparison:
    parent = client.get_run(run_id)
    summary = _summary(client, run_id, ComparisonSummary)
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.`{PARENT_TAG}` = '{run_id}' "
                                  f"and tags.`{ROLE_TAG}` = 'trial'", max_results=10_000)
    frames: dict[str, list[pd.DataFrame]] = {}
    scaling: dict[str, list[pd.DataFrame]] = {}
    scaled = any(figures.scaling is not None for figures in summary.stacks.values())
    with tempfile.TemporaryDirectory(prefix="dashboard-") as temp:
        for child in children:
            stack = child.data.tags.get("harness.stack", "")
            trial = child.data.tags.get("harness.trial", "1")
            local = client.download_artifacts(child.info.run_id,
                                               f"records/trial-{trial}.parquet", temp)
            frames.setdefault(stack, []).append(pd.read_parquet(local))
            if scaled and summary.stacks[stack].scaling is not None:
                local = client.download_artifacts(child.info.run_id,
                                                   f"{SCALING_DIR}/trial-{trial}.parquet", temp)
                scaling.setdefault(stack, []).append(pd.read_parquet(local))
    order = [stack for stack in summary.stacks if stack in frames]
    records = {stack: pd.concat(frames[stack], ignore_index=True) for stack in order}
    return Comparison(run_id, str(parent.info.run_name), summary, records, scaling)


def load_capacity_summary(client: Any, run_id: str) -> CapacitySummary:
    """A capacity run's summary: everything its page shows."""
    return _summary(client, run_id, CapacitySummary)


def _artifact(client: Any, run_id: str, name: str, model: type[R]) -> R:
    try:
        return model.model_validate_json(_download_text(client, run_id, name))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ResultsError(f"run {run_id}: its {name} is not a {model.__name__}: "
                           f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def load_scorecard(client: Any, run_id: str) -> Scorecard:
    """A scorecard's rows (its capacity summary is read like a capacity run's)."""
    return _artifact(client, run_id, SCORECARD_FILE, Scorecard)


def load_mechanisms(client: Any, run_id: str) -> Mechanisms:
    """Each optimization's gain, measured alone."""
    return _artifact(client, run_id, MECHANISMS_FILE, Mechanisms)


def load_coldstart(client: Any, run_id: str) -> ColdStartResult:
    """Each start's phases, their means over trials and the eager ÷ lazy ratios."""
    return _artifact(client, run_id, COLDSTART_FILE, ColdStartResult)
