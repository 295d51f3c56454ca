"""A results folder read back: what `harness run` wrote (see `harness.run` for the layout).

Everything logged to MLflow is read from here, never from memory, so a run logged later with
`harness log DIR` is logged exactly as one logged right after it finished.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessError
from harness.metrics import Window, summary_slo_s


@dataclass(frozen=True, slots=True)
class TrialResult:
    stack: str
    trial: int
    records_path: Path
    log_dir: Path


@dataclass(frozen=True, slots=True)
class SavedRun:
    path: Path
    run: dict[str, Any]
    summary: dict[str, Any]
    stack_specs: dict[str, dict[str, Any]]
    workload: dict[str, Any]
    trials: list[TrialResult] = field(default_factory=list)

    @property
    def results_id(self) -> str:
        """What makes this run one run in MLflow, however often it is logged."""
        if self.run.get("run_id"):
            return str(self.run["run_id"])
        digest = hashlib.sha256(json.dumps(self.run, sort_keys=True).encode()).hexdigest()
        return digest[:32]

    @property
    def window(self) -> Window:
        return Window.from_summary(self.summary)

    @property
    def slo_s(self) -> float:
        return summary_slo_s(self.summary)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise HarnessError(f"{path} is missing: is {path.parent} a folder written by "
                           "`harness run`?") from None
    except ValueError as exc:
        raise HarnessError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path} does not hold a JSON object")
    return data


def load_saved_run(path: Path) -> SavedRun:
    if not path.is_dir():
        raise HarnessError(f"{path} is not a folder; pass a results folder written by "
                           "`harness run` (it holds run.json and summary.json)")
    run = read_json(path / "run.json")
    summary = read_json(path / "summary.json")
    specs = path / "specs"
    stack_specs = {name: yaml.safe_load((specs / f"{name}.yaml").read_text()) or {}
                   for name in summary["stacks"] if (specs / f"{name}.yaml").is_file()}
    workload = yaml.safe_load((specs / "workload.yaml").read_text()) or {}
    trials = [TrialResult(stack, int(parquet.stem.removeprefix("trial-")), parquet,
                          path / stack / parquet.stem / "logs")
              for stack in summary["stacks"]
              for parquet in sorted((path / stack / "records").glob("trial-*.parquet"))]
    if not trials:
        raise HarnessError(f"{path} holds no trial records (<stack>/records/trial-*.parquet)")
    return SavedRun(path, run, summary, stack_specs, workload,
                    sorted(trials, key=lambda trial: (trial.trial, trial.stack)))
