"""The one experiment driver. An experiment is stacks × workload × scenario × trials; every kind
(`run`, `capacity`, `quality`, and those to come) is a small subclass of `Experiment` that says
what one trial measures and what its summary is. The driver does the rest, the same way for all:

    results/<run-id>/
      run.json                  what was asked, the run's id, where it ran (RunInfo)
      specs/<stack>.yaml, specs/workload.yaml
      <stack>/trial-<k>/logs/   replica and balancer logs of that trial's stack
      <stack>/trial-<k>/machine.json  the machine's own speed before and after the trial
                                (`harness.measure.machine_speed`)
      <stack>/trial-<k>/host.csv    the host's steal, the cores' speed and the CPU taken
                                outside the run, through it (`harness.measure.host_timeline`)
      ...                       what the experiment's trials wrote (schedules, records)
      summary.json              the experiment's typed summary, rewritten after every trial

Trials are interleaved (A B A B): one stack at a time, so stacks never share the cores; each
trial starts its stack fresh (or uses an endpoint) and stops it after. A replay (`replay`) runs
a written schedule through the load generator, reads the records back, checks they replayed
that schedule's bytes, accounts for every scheduled request, and keeps them as parquet. Records
reach disk first and the summary is rewritten atomically after every trial, so a crash keeps
every finished trial.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from harness.errors import LoadError, UsageError
from harness.experiments.ablation import ablation_variants
from harness.experiments.target import Spec, Target, load_stacks, serving
from harness.measure.environment import capture_environment
from harness.measure.host_timeline import host_sampled
from harness.measure.loadgen import LoadJob, StopWhen, run_load
from harness.measure.machine_speed import machine_speed_around
from harness.measure.records import STOPPED, UNRECORDED, account_for_schedule, read_records
from harness.report.results import Result, RunInfo
from harness.workload.spec import WorkloadSpec
from stacks.launcher import StartObserver, helper_cores
from stacks.spec import PROJECT_ROOT, StackSpec
from workloads.records import FLUSH_INTERVAL_S
from workloads.schedule import Schedule, write_schedule

RAW_RECORDS = "records.jsonl"  # in each trial's folder, as the load generator wrote them


class ExperimentConfig(BaseModel):
    """What every experiment is asked: which stacks, which traffic, how many trials, where to
    write. Each kind adds its own options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stacks: list[str] = Field(default=["diy", "optimized"], min_length=1)
    workload: str = "writing_assistant"
    trials: int = Field(default=1, ge=1, le=100)
    workers: int = Field(default=0, ge=0, le=64)
    out: Path | None = None
    experiment: str | None = None  # MLflow experiment; the workload's name when unset
    ablate: bool = False  # add variants of the last launched stack, one optimization off each


class TrialObserver(Protocol):
    def stack_starting(self, stack: str, trial: int) -> StartObserver: ...

    def load_progress(self, recorded: int) -> None: ...


@dataclass(frozen=True, slots=True)
class WrittenSchedule:
    """A schedule on disk: what a replay needs of it."""

    path: Path
    sha256: str
    offsets_s: np.ndarray
    last_offset_s: float

    @classmethod
    def write(cls, schedule: Schedule, path: Path) -> WrittenSchedule:
        sha256 = write_schedule(schedule, path)
        offsets = np.array([entry.offset_s for entry in schedule.entries], dtype=np.float64)
        return cls(path, sha256, offsets, float(schedule.header["last_offset_s"]))


def default_out_dir(name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return PROJECT_ROOT / "results" / f"{stamp}-{name}"


def fresh_out_dir(out: Path) -> Path:
    """Results never overwrite results: the folder must be new or empty."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out: {out} already holds files; choose a new folder (results are "
                         "never overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    return out


Config = TypeVar("Config", bound=ExperimentConfig)
Observer = TypeVar("Observer", bound=TrialObserver)


class Experiment(ABC, Generic[Config, Observer]):
    """One experiment's folder, stacks, trial loop and summary."""

    kind = "comparison"
    summary_file = "summary.json"

    def __init__(self, config: Config, workload: WorkloadSpec, name: str,
                 observer: Observer) -> None:
        self.config = config
        self.workload = workload
        self.observer = observer
        self.stacks: list[Spec] = [
            spec.fixed_fleet() if isinstance(spec, StackSpec) and not self.autoscales() else spec
            for spec in load_stacks(config.stacks)]
        self.ablation: tuple[str, dict[str, str]] | None = None
        if config.ablate:
            studied, variant_names, variants = ablation_variants(
                self.stacks, defences=self.ablates_defences())
            self.stacks = [*self.stacks, *variants]
            self.ablation = (studied, variant_names)
        self.out = fresh_out_dir(config.out or default_out_dir(name))
        self.summary_path = self.out / self.summary_file

    def autoscales(self) -> bool:
        """Whether the stacks' autoscalers act in its trials; otherwise each fleet is fixed at
        its `replicas`, so what a trial measures is the fleet the spec names."""
        return False

    def ablates_defences(self) -> bool:
        """Whether `--ablate` also turns off the balancer's defences (they act on faults)."""
        return False

    @property
    def baseline(self) -> str:
        return self.stacks[0].name

    def default_experiment(self) -> str:
        """The MLflow experiment it is logged to when `--experiment` is not given."""
        return self.workload.name

    def write_inputs(self, workload_note: str = "", **run_fields: Any) -> None:
        """specs/ (every stack and the workload) and run.json, before any trial."""
        specs = self.out / "specs"
        specs.mkdir()
        for spec in self.stacks:
            (specs / f"{spec.name}.yaml").write_text(yaml.safe_dump(spec.model_dump()))
        (specs / "workload.yaml").write_text(workload_note
                                             + yaml.safe_dump(self.workload.model_dump()))
        self.run_info = RunInfo.model_validate({
            **self.config.model_dump(mode="json"), **run_fields, "kind": self.kind,
            # The plan as the stacks resolved, so a run cut short can be summarized later.
            "stack_names": [spec.name for spec in self.stacks],
            "ablation_plan": None if self.ablation is None else {
                "stack": self.ablation[0], "variants": self.ablation[1]},
            "out": str(self.out),
            "experiment": self.config.experiment or self.default_experiment(),
            "run_id": uuid.uuid4().hex,
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
            "environment": capture_environment()})
        self.run_info.write(self.out / "run.json")

    def run(self) -> Path:
        speeds = None  # the machine's, after the trial before: this one's before
        for trial in range(1, self.config.trials + 1):
            for spec in self.stacks:
                trial_dir = self.out / spec.name / f"trial-{trial}"
                self.before_start(spec, trial)
                with (machine_speed_around(trial_dir, speeds) as taken, host_sampled(trial_dir),
                      serving(spec, trial_dir / "logs",
                              self.observer.stack_starting(spec.name, trial)) as target):
                    self.measure(spec, trial, target, trial_dir)
                speeds = taken.after if taken is not None else None
                self.write_summary()
        return self.summary_path

    def before_start(self, spec: Spec, trial: int) -> None:
        """What a kind does to the machine before a trial's stack starts (nothing here)."""

    def write_summary(self) -> None:
        """After every trial: the summary of everything measured so far, on disk."""
        self.summary().write(self.summary_path)

    @abstractmethod
    def measure(self, spec: Spec, trial: int, target: Target, trial_dir: Path) -> None:
        """One trial of one stack, already serving at `target`."""

    @abstractmethod
    def summary(self) -> Result:
        """Everything measured so far, as the typed summary."""

    def load_generator_cores(self, target: Target) -> str | None:
        """The one Locust process's fixed cores beside a stack this machine launches
        (`stacks.launcher.helper_cores`); None (anywhere) for an endpoint, or with workers,
        which are there to spread over the cores."""
        if target.stack is None or self.config.workers:
            return None
        return helper_cores(target.stack.spec).load_generator

    def replay(self, target: Target, schedule: WrittenSchedule, where: Path, trial: int,
               stop_when: StopWhen | None = None) -> tuple[pd.DataFrame, str | None]:
        """Replay a schedule against the target; its records (raw in `where`, Locust's logs in
        `where/logs`) with every scheduled request accounted for, and why it was stopped
        early (None: it ran whole)."""
        raw = where / RAW_RECORDS
        stopped = run_load(LoadJob(
            locustfile=self.workload.locustfile_path(), host=target.endpoint,
            schedule=schedule.path, records=raw, log_dir=where / "logs", model=target.model,
            workers=self.config.workers, senders=self.workload.max_in_flight,
            api_key_env=target.api_key_env,
            expected_s=schedule.last_offset_s + self.workload.timeout_s + FLUSH_INTERVAL_S,
            cores=self.load_generator_cores(target), stack=target.name,
        ), self.observer.load_progress, stop_when)
        header, frame = read_records(raw)
        if header["schedule_sha256"] != schedule.sha256:
            raise LoadError(f"{raw} replayed schedule {header['schedule_sha256']}, not "
                            f"{schedule.path} ({schedule.sha256})")
        frame = account_for_schedule(frame, schedule.offsets_s,
                                     STOPPED if stopped else UNRECORDED)
        return frame.assign(trial=trial), stopped
