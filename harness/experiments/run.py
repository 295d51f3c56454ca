"""`harness run`: the same schedule against each stack in turn, measured from records on disk.

On top of the trial driver (`harness.experiments.trial`), a run writes:

    schedule.jsonl                      every request, with its send offset (sha256 in summary)
    <stack>/records/trial-<k>.parquet   one row per request
    <stack>/trial-<k>/                  raw records, replica, balancer and Locust logs
    summary.json                        per stack figures, ratios to the first stack

With a scenario that scales (`autoscale: true`), each stack's autoscaler acts and its log is
kept on the records' clock in `<stack>/scaling/trial-<k>.parquet`; each stack's summary gains
its scaling metrics (`harness.measure.scaling`), and `--ablate-scaling` runs the last stack
under each other policy too (`harness.experiments.ablation.scaling_variants`).

With a scenario with faults (`--scenario`, `workloads/scenarios/`), its faults are played
against each launched stack's replicas during the replay (`harness.experiments.faults`), logged in
`<stack>/trial-<k>/faults.jsonl`; the balancer's metrics at the trial's end are kept in
`balancer-metrics.txt`, and each stack's summary gains its reliability report
(`harness.measure.reliability`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import yaml
from pydantic import Field

from harness.client import get
from harness.errors import EndpointError, UsageError
from harness.experiments.ablation import contributions, scaling_ratios, scaling_variants
from harness.experiments.faults import FaultPlayer
from harness.experiments.target import Spec, Target
from harness.experiments.trial import (
    RAW_RECORDS,
    Experiment,
    ExperimentConfig,
    TrialObserver,
    WrittenSchedule,
)
from harness.measure.metrics import Window, ratios, summarize
from harness.measure.records import write_parquet
from harness.measure.reliability import (
    BALANCER_METRICS,
    FAULTS_FILE,
    LOGS,
    read_trial_events,
    reliability,
)
from harness.measure.scaling import (
    SCALING_DIR,
    peak_periods,
    read_replay_scaling,
    scaling_frame,
    scaling_metrics,
)
from harness.report.results import Ablation, ComparisonSummary, StackFigures
from harness.report.scaling_results import ScalingAblation
from harness.workload.scenario import FaultPlan, load_scenario
from harness.workload.schedule import build_schedule, load_tokenizer
from harness.workload.spec import WorkloadSpec, load_workload_spec
from stacks.launcher import SCALING_EVENTS
from stacks.spec import StackSpec


class RunConfig(ExperimentConfig):
    rate_qps: float | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, gt=0)
    rate_scale: float = Field(default=1.0, gt=0, allow_inf_nan=False)  # every rate × this
    scenario: str | None = None  # a name under workloads/scenarios/ or a YAML path
    ablate_scaling: bool = False  # the studied stack under each autoscaling policy


class RunObserver(TrialObserver, Protocol):
    def load_started(self, stack: str, trial: int, requests: int) -> None: ...

    def trial_done(self, stack: str, trial: int, figures: StackFigures) -> None: ...


class RunExperiment(Experiment[RunConfig, RunObserver]):
    """One `harness run`: its schedule, its stacks, and what was measured."""

    def __init__(self, config: RunConfig, observer: RunObserver) -> None:
        workload = load_workload_spec(config.workload).with_overrides(config.rate_qps,
                                                                      config.duration_s)
        self.scenario = None if config.scenario is None else load_scenario(config.scenario)
        self.faults: FaultPlan | None = None
        if self.scenario is not None:
            workload = self.scenario.shape(workload)
        workload = workload.scaled(config.rate_scale)
        if self.scenario is not None:
            self.faults = self.scenario.plan(workload)
        super().__init__(config, workload, workload.name, observer)
        self.scaling_ablation: tuple[str, str, dict[str, str]] | None = None
        if config.ablate_scaling:
            if not self.autoscales():
                raise UsageError("--ablate-scaling compares autoscaling policies: give a "
                                 "scenario that scales (autoscale: true), e.g. --scenario "
                                 "double_spike")
            studied, policy, names, variants = scaling_variants(self.stacks)
            self.stacks = [*self.stacks, *variants]
            self.scaling_ablation = (studied, policy, names)
        if self.faults is not None and self.faults.signals:
            for spec in self.stacks:
                if not isinstance(spec, StackSpec):
                    raise UsageError(f"--scenario {config.scenario}: its faults act on "
                                     f"replicas this machine launches; {spec.name} is an "
                                     "endpoint running elsewhere")
        self.window = measured_window(workload)
        built = build_schedule(workload, load_tokenizer(workload.tokenizer_path()))
        self.requests = len(built.entries)
        self.schedule = WrittenSchedule.write(built, self.out / "schedule.jsonl")
        self.trials: dict[str, list[pd.DataFrame]] = {spec.name: [] for spec in self.stacks}
        # The scenario's own name (the option may be a path) and what it did, for a summary
        # rebuilt later (`harness.experiments.recover`).
        self.scenario_faults = self.scenario is not None and bool(self.scenario.faults)
        self.write_inputs(
            scenario_name=None if self.scenario is None else self.scenario.name,
            scenario_faults=self.scenario_faults,
            scenario_scales=self.autoscales(), scaling_ablation_plan=self.scaling_ablation)

    def ablates_defences(self) -> bool:
        return self.config.scenario is not None

    def autoscales(self) -> bool:
        return self.scenario is not None and self.scenario.autoscale

    def measure(self, spec: Spec, trial: int, target: Target, trial_dir: Path) -> None:
        self.observer.load_started(spec.name, trial, self.requests)
        with self.fault_player(target, trial_dir):
            frame, _ = self.replay(target, self.schedule, trial_dir, trial)
        if target.stack is not None:  # its retries, for the reliability report
            with suppress(EndpointError):  # a balancer gone: retries unknown, nothing lost
                (trial_dir / BALANCER_METRICS).write_text(get(f"{target.endpoint}/metrics").text)
        write_parquet(frame, self.out / spec.name / "records" / f"trial-{trial}.parquet")
        if self.autoscales() and target.stack is not None:
            scaled = read_replay_scaling(trial_dir / RAW_RECORDS,
                                         trial_dir / LOGS / SCALING_EVENTS, trial)
            write_parquet(scaling_frame(scaled),
                          self.out / spec.name / SCALING_DIR / f"trial-{trial}.parquet")
        self.trials[spec.name].append(frame)
        self.observer.trial_done(spec.name, trial, StackFigures.model_validate(
            summarize(frame, self.window, self.workload.slo_s, self.workload.stream)))

    def fault_player(self, target: Target, trial_dir: Path) -> AbstractContextManager[object]:
        """The scenario's player; against an endpoint, only faults that signal no replica (an
        overload) are in the plan (checked when the run started), and are logged alike."""
        if self.faults is None:
            return nullcontext()
        replicas = target.stack.replicas if target.stack is not None else []
        return FaultPlayer(self.faults, replicas, trial_dir / RAW_RECORDS,
                           trial_dir / FAULTS_FILE, target.name)

    def summary(self) -> ComparisonSummary:
        return comparison_summary(self.out.name, self.workload, self.schedule.sha256,
                                  self.trials, self.ablation,
                                  scenario=None if self.scenario is None else self.scenario.name,
                                  folder=self.out, scales=self.autoscales(),
                                  scaling_ablation=self.scaling_ablation,
                                  faults=self.scenario_faults)


def measured_window(workload: WorkloadSpec) -> Window:
    """Each trial's window: after the warm-up, the workload's measured seconds."""
    return Window(workload.warmup_s, workload.measured_s)


def comparison_summary(run: str, workload: WorkloadSpec, schedule_sha256: str,
                       trials: dict[str, list[pd.DataFrame]],
                       ablation: tuple[str, dict[str, str]] | None,
                       cut: dict[str, Window] | None = None, scenario: str | None = None,
                       folder: Path | None = None, scales: bool = False,
                       scaling_ablation: tuple[str, str, dict[str, str]] | None = None,
                       faults: bool = True) -> ComparisonSummary:
    """The summary of every stack's trials so far (the first stack of `trials` is the
    baseline): a pure function of what the run wrote, so saved records give the same summary.
    `cut`: a shorter window for a stack whose only trial was cut short
    (`harness.experiments.recover`). `scenario`: with `faults`, their logs are read from
    `folder`; `scales`: so are the autoscalers' (`harness.measure.scaling`)."""
    window = measured_window(workload)
    stacks: dict[str, dict[str, Any]] = {}
    for name, frames in trials.items():
        if not frames:
            continue
        records = pd.concat(frames, ignore_index=True)
        stack_window = (cut or {}).get(name, window)
        # Every trial's records were checked to carry this schedule's hash when read.
        stacks[name] = {**summarize(records, stack_window, workload.slo_s, workload.stream),
                        "schedule_sha256": schedule_sha256, "records": f"{name}/records"}
        if scenario is not None and folder is not None and faults:
            events = [read_trial_events(folder / name / f"trial-{k}", k,
                                        folder / name / f"trial-{k}" / RAW_RECORDS)
                      for k in sorted(records["trial"].unique())]
            stacks[name]["reliability"] = reliability(records, events, stack_window, scenario)
        if scales and folder is not None:
            stacks[name]["scaling"] = stack_scaling(folder, name, records, stack_window,
                                                    workload)
    baseline = next(iter(trials))
    summary = ComparisonSummary.model_validate({
        "run": run, "workload": workload.name, "schedule_sha256": schedule_sha256,
        "window": {"start_s": window.start_s, "length_s": window.length_s},
        "baseline": baseline, "stacks": stacks,
        "ratios": ratios(stacks, baseline) if baseline in stacks else {}})
    summary.scenario = scenario
    if scaling_ablation is not None:
        studied, policy, names = scaling_ablation
        summary.scaling_ablation = ScalingAblation.model_validate({
            "stack": studied, "policy": policy, "variants": names,
            "ratios": scaling_ratios({name: figures["scaling"] for name, figures in
                                      stacks.items() if "scaling" in figures}, studied, names)})
    if ablation is not None:
        studied, variant_names = ablation
        summary.ablation = Ablation.model_validate({
            "stack": studied, "variants": variant_names,
            "contributions": contributions(stacks, studied, variant_names)})
    return summary


def stack_scaling(folder: Path, name: str, records: pd.DataFrame, window: Window,
                  workload: WorkloadSpec) -> dict[str, Any]:
    """One stack's scaling metrics, from its trials' records and scaling logs and the spec the
    run wrote for it."""
    # As the run wrote it: its target already measured, whatever became of `target_from`.
    raw = yaml.safe_load((folder / "specs" / f"{name}.yaml").read_text())
    spec = StackSpec.model_validate(raw) if "engine" in raw else None
    scaling = spec.autoscaling if spec is not None else None
    logs = []
    for trial in sorted(records["trial"].unique()):
        trial_dir = folder / name / f"trial-{trial}"
        logs.append(read_replay_scaling(trial_dir / RAW_RECORDS,
                                        trial_dir / LOGS / SCALING_EVENTS, int(trial)))
    fixed = spec.replicas if spec is not None else None
    return {"policy": "none" if scaling is None else scaling.policy,
            **scaling_metrics(records, logs, window, workload.slo_s,
                              peak_periods(workload.segments()), fixed)}


def run_experiment(config: RunConfig, observer: RunObserver) -> Path:
    return RunExperiment(config, observer).run()
