"""A results folder read back: what an experiment wrote (see `harness.experiments.trial` for the
layout), as its typed results.

Everything logged to MLflow is read from here, never from memory, so a run logged later with
`harness log DIR` is logged exactly as one logged right after it finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from harness.errors import ResultsError
from harness.measure.metrics import Window
from harness.report.results import ComparisonSummary, RunInfo, read_result


@dataclass(frozen=True, slots=True)
class TrialResult:
    stack: str
    trial: int
    records_path: Path
    log_dir: Path


@dataclass(frozen=True, slots=True)
class SavedRun:
    path: Path
    run: RunInfo
    summary: ComparisonSummary
    stack_specs: dict[str, dict[str, Any]]
    workload: dict[str, Any]
    trials: list[TrialResult] = field(default_factory=list)

    @property
    def results_id(self) -> str:
        """What makes this run one run in MLflow, however often it is logged."""
        return self.run.results_id

    @property
    def window(self) -> Window:
        return self.summary.window.window()

    @property
    def slo_s(self) -> float:
        return self.summary.slo_s


def results_folder(path: Path) -> Path:
    if not path.is_dir():
        raise ResultsError(f"{path} is not a folder; pass a results folder written by "
                           "`harness run` or `harness capacity` (it holds run.json and "
                           "summary.json)")
    return path


def read_specs(path: Path, stacks: list[str]) -> tuple[dict[str, dict[str, Any]],
                                                        dict[str, Any]]:
    """Each stack's spec and the workload, as the run saved them under specs/."""
    specs = path / "specs"
    stack_specs = {name: yaml.safe_load((specs / f"{name}.yaml").read_text()) or {}
                   for name in stacks if (specs / f"{name}.yaml").is_file()}
    workload_file = specs / "workload.yaml"
    workload = yaml.safe_load(workload_file.read_text()) or {} if workload_file.is_file() else {}
    return stack_specs, workload


def trial_files(path: Path, stack: str, kind: str = "records") -> list[Path]:
    """A stack's `<kind>/trial-<k>.parquet` files in a results folder, in trial order
    (trial-10 after trial-9, where a plain sort puts it after trial-1)."""
    files = [file for file in (path / stack / kind).glob("trial-*.parquet")
             if file.stem.removeprefix("trial-").isdigit()]
    return sorted(files, key=lambda file: int(file.stem.removeprefix("trial-")))


def read_trials(path: Path, stack: str, kind: str = "records") -> list[pd.DataFrame]:
    """Each trial's frame of `trial_files`, in trial order."""
    return [pd.read_parquet(file) for file in trial_files(path, stack, kind)]


def load_saved_run(path: Path) -> SavedRun:
    """A `harness run` folder: its run.json, summary, specs and every trial's records."""
    run = read_result(results_folder(path) / "run.json", RunInfo)
    summary = read_result(path / "summary.json", ComparisonSummary)
    stack_specs, workload = read_specs(path, list(summary.stacks))
    trials = [TrialResult(stack, int(parquet.stem.removeprefix("trial-")), parquet,
                          path / stack / parquet.stem / "logs")
              for stack in summary.stacks
              for parquet in trial_files(path, stack)]
    if not trials:
        raise ResultsError(f"{path} holds no trial records (<stack>/records/trial-*.parquet)")
    return SavedRun(path, run, summary, stack_specs, workload,
                    sorted(trials, key=lambda trial: (trial.trial, trial.stack)))
