"""`harness mechanisms`: each optimization measured alone, where it binds.

A full stack on 2 cores mixes every bottleneck at once, so its ratio says little about any one
optimization. Here each one is added, alone, to the baseline stack (diy), with the setting the
optimized stack gives it, and measured in the regime it exists for — the way the seed reports
them (FP8 ≈ +30 % per pod, several API servers ≈ +20 %, P2C against hotspots):

- `w8a8`: engine-bound throughput. One replica on its share of the cores, saturated decode
  (64 requests in flight, 128 tokens out each); output tokens/s per replica.
- `multi_api`: front-end-bound throughput. One replica, one-token answers to short prompts,
  offered faster than it answers; completions/s per replica.
- `p2c`: a hotspot. Two replicas, one at half speed (the `replica_slow` scenario), at
  `load_fraction` (70 %) of what the round-robin stack answers when saturated, measured first
  on that stack; P99 under P2C against round-robin.

Each mechanism is one `harness run` of its two variants (its folder is a run folder), trials
interleaved off/on, on the same schedule. The gain is the geometric mean of the paired trials'
ratios with a Student-t interval (`capacity.stats.ratio_interval`). A saturated window ends
the replay when it ends: the backlog the schedule left would only add minutes.

    <mechanism>/            a run folder (`harness.experiments.run`)
    p2c-calibration/        the saturated run (a run folder) that sets the P2C load
    specs/                  each variant's stack.yaml
    mechanisms.json         every gain, rewritten after each mechanism
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field

from harness.errors import LoadError
from harness.experiments.mechanism_plans import (
    CALIBRATION_DURATION_S,
    CALIBRATION_IN_FLIGHT,
    CALIBRATION_QPS,
    P2C_DURATION_S,
    PLANS,
    MechanismPlan,
)
from harness.experiments.mechanisms_summary import (
    MECHANISMS_FILE,
    calibration_folder,
    mechanisms_from_folder,
    saturated_throughput,
)
from harness.experiments.run import RunConfig, RunExperiment, RunObserver, measured_window
from harness.experiments.target import Target
from harness.experiments.trial import WrittenSchedule, default_out_dir, fresh_out_dir
from harness.measure.environment import capture_environment
from harness.measure.loadgen import StopWhen
from harness.measure.metrics import Window
from harness.report.mechanisms_results import Mechanism
from harness.report.results import RunInfo
from harness.workload.spec import WorkloadSpec, load_workload_spec
from stacks.spec import StackSpec, load_local_stack_spec
from workloads.records import COLUMNS

DONE_S = COLUMNS.index("done_s")


class MechanismsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    baseline: str = Field(default="diy", description="the stack each optimization is added to")
    source: str = Field(default="optimized",
                        description="the stack whose setting of each optimization is used")
    mechanisms: list[Mechanism] = Field(default_factory=lambda: list(get_args(Mechanism)),
                                        min_length=1)
    trials: int = Field(default=3, ge=1, le=50)
    load_fraction: float = Field(default=0.7, gt=0, le=1, description="the P2C load, as a "
                                 "fraction of the round-robin stack's saturated throughput")
    workers: int = Field(default=0, ge=0, le=64)
    out: Path | None = None
    experiment: str | None = None


def ends_with(window: Window) -> StopWhen:
    """Ends a saturated replay once a request finishes after its window."""
    def stop(rows: list[list[Any]]) -> str | None:
        over = any(row[DONE_S] is not None and row[DONE_S] >= window.end_s for row in rows)
        return "the saturated window is over" if over else None
    return stop


class MechanismRun(RunExperiment):
    """One mechanism's run: a `harness run` of its two variants, whose saturated replays end
    with their window."""

    def __init__(self, config: RunConfig, observer: RunObserver, saturated: bool) -> None:
        self.saturated = saturated
        super().__init__(config, observer)

    def replay(self, target: Target, schedule: WrittenSchedule, where: Path, trial: int,
               stop_when: StopWhen | None = None) -> Any:
        if self.saturated:
            stop_when = ends_with(measured_window(self.workload))
        return super().replay(target, schedule, where, trial, stop_when)


def _write_spec(spec: StackSpec, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.name}.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    return path


def _write_workload(workload: WorkloadSpec, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(workload.model_dump(mode="json")))
    return path


def calibration_workload(workload: WorkloadSpec) -> WorkloadSpec:
    """The workload offered faster than two replicas answer, its senders capped: a saturated
    window whose throughput is the stack's."""
    return WorkloadSpec.model_validate({
        **workload.model_dump(), "name": f"{workload.name}_saturated", "stages": None,
        "rate_qps": CALIBRATION_QPS, "duration_s": CALIBRATION_DURATION_S,
        "max_in_flight": CALIBRATION_IN_FLIGHT})


class MechanismsRun:
    """Every chosen mechanism, one after the other, each a run folder under one folder."""

    def __init__(self, config: MechanismsConfig, observer: RunObserver) -> None:
        self.config = config
        self.observer = observer
        self.base = load_local_stack_spec(config.baseline).fixed_fleet()
        self.source = load_local_stack_spec(config.source).fixed_fleet()
        self.plans = [PLANS[name] for name in dict.fromkeys(config.mechanisms)]
        self.variants = {plan.name: plan.variants(self.base, self.source)
                         for plan in self.plans}  # checked before anything starts
        self.out = fresh_out_dir(config.out or default_out_dir("mechanisms"))
        self.summary_path = self.out / MECHANISMS_FILE
        self.run_info = RunInfo.model_validate({
            **config.model_dump(mode="json"), "kind": "mechanisms", "out": str(self.out),
            "experiment": config.experiment or "mechanisms",
            "run_id": uuid.uuid4().hex,
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
            "environment": capture_environment()})
        self.run_info.write(self.out / "run.json")

    def run(self) -> Path:
        for plan in self.plans:
            self.run_one(plan)
            mechanisms_from_folder(self.out).write(self.summary_path)
        return self.summary_path

    def run_one(self, plan: MechanismPlan) -> None:
        off, on = self.variants[plan.name]
        paths = [str(_write_spec(spec, self.out / "specs" / plan.name)) for spec in (off, on)]
        rate, duration = None, None
        if plan.calibrated:
            rate = self.config.load_fraction * self.calibrate(plan, paths[0])
            duration = P2C_DURATION_S
        config = RunConfig(stacks=paths, workload=plan.workload, rate_qps=rate,
                           duration_s=duration, trials=self.config.trials,
                           scenario=plan.scenario, workers=self.config.workers,
                           out=self.out / plan.name, experiment=self.run_info.experiment)
        MechanismRun(config, self.observer, plan.saturated).run()

    def calibrate(self, plan: MechanismPlan, off_path: str) -> float:
        """The off variant's saturated throughput (QPS) on the plan's workload."""
        workload = calibration_workload(load_workload_spec(plan.workload))
        folder = calibration_folder(self.out, plan.name)
        path = _write_workload(workload, self.out / "specs" / plan.name / "calibration.yaml")
        config = RunConfig(stacks=[off_path], workload=str(path), trials=1,
                           workers=self.config.workers, out=folder,
                           experiment=self.run_info.experiment)
        MechanismRun(config, self.observer, saturated=True).run()
        throughput = saturated_throughput(folder)
        if throughput is None or throughput <= 0:
            raise LoadError(f"{folder}: the calibration answered nothing, so the P2C load "
                            "cannot be set; see its logs/")
        return throughput


def run_mechanisms(config: MechanismsConfig, observer: RunObserver) -> Path:
    return MechanismsRun(config, observer).run()
