"""`harness run`: the same schedule against each stack in turn, measured from records on disk.

On top of the trial driver (`harness.experiments.trial`), a run writes:

    schedule.jsonl                      every request, with its send offset (sha256 in summary)
    <stack>/records/trial-<k>.parquet   one row per request
    <stack>/trial-<k>/                  raw records, replica, balancer and Locust logs
    summary.json                        per stack figures, ratios to the first stack
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pandas as pd
from pydantic import Field

from harness.experiments.ablation import contributions
from harness.experiments.target import Spec, Target
from harness.experiments.trial import Experiment, ExperimentConfig, TrialObserver, WrittenSchedule
from harness.measure.metrics import Window, ratios, summarize
from harness.measure.records import write_parquet
from harness.report.results import Ablation, ComparisonSummary, StackFigures
from harness.workload.schedule import build_schedule, load_tokenizer
from harness.workload.spec import WorkloadSpec, load_workload_spec


class RunConfig(ExperimentConfig):
    rate_qps: float | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, gt=0)


class RunObserver(TrialObserver, Protocol):
    def load_started(self, stack: str, trial: int, requests: int) -> None: ...

    def trial_done(self, stack: str, trial: int, figures: StackFigures) -> None: ...


class RunExperiment(Experiment[RunConfig, RunObserver]):
    """One `harness run`: its schedule, its stacks, and what was measured."""

    def __init__(self, config: RunConfig, observer: RunObserver) -> None:
        workload = load_workload_spec(config.workload).with_overrides(config.rate_qps,
                                                                      config.duration_s)
        super().__init__(config, workload, workload.name, observer)
        self.window = measured_window(workload)
        built = build_schedule(workload, load_tokenizer(workload.tokenizer_path()))
        self.requests = len(built.entries)
        self.schedule = WrittenSchedule.write(built, self.out / "schedule.jsonl")
        self.trials: dict[str, list[pd.DataFrame]] = {spec.name: [] for spec in self.stacks}
        self.write_inputs()

    def measure(self, spec: Spec, trial: int, target: Target, trial_dir: Path) -> None:
        self.observer.load_started(spec.name, trial, self.requests)
        frame, _ = self.replay(target, self.schedule, trial_dir, trial)
        write_parquet(frame, self.out / spec.name / "records" / f"trial-{trial}.parquet")
        self.trials[spec.name].append(frame)
        self.observer.trial_done(spec.name, trial, StackFigures.model_validate(
            summarize(frame, self.window, self.workload.slo_s, self.workload.stream)))

    def summary(self) -> ComparisonSummary:
        return comparison_summary(self.out.name, self.workload, self.schedule.sha256,
                                  self.trials, self.ablation)


def measured_window(workload: WorkloadSpec) -> Window:
    """Each trial's window: after the warm-up, the workload's measured seconds."""
    return Window(workload.warmup_s, workload.measured_s)


def comparison_summary(run: str, workload: WorkloadSpec, schedule_sha256: str,
                       trials: dict[str, list[pd.DataFrame]],
                       ablation: tuple[str, dict[str, str]] | None,
                       cut: dict[str, Window] | None = None) -> ComparisonSummary:
    """The summary of every stack's trials so far (the first stack of `trials` is the
    baseline): a pure function of the records, so saved records give the same summary. `cut`:
    a shorter window for a stack whose only trial was cut short (`harness.experiments.recover`)."""
    window = measured_window(workload)
    # Every trial's records were checked to carry this schedule's hash when read.
    stacks = {name: {**summarize(pd.concat(frames, ignore_index=True),
                                 (cut or {}).get(name, window), workload.slo_s, workload.stream),
                     "schedule_sha256": schedule_sha256, "records": f"{name}/records"}
              for name, frames in trials.items() if frames}
    baseline = next(iter(trials))
    summary = ComparisonSummary.model_validate({
        "run": run, "workload": workload.name, "schedule_sha256": schedule_sha256,
        "window": {"start_s": window.start_s, "length_s": window.length_s},
        "baseline": baseline, "stacks": stacks,
        "ratios": ratios(stacks, baseline) if baseline in stacks else {}})
    if ablation is not None:
        studied, variant_names = ablation
        summary.ablation = Ablation.model_validate({
            "stack": studied, "variants": variant_names,
            "contributions": contributions(stacks, studied, variant_names)})
    return summary


def run_experiment(config: RunConfig, observer: RunObserver) -> Path:
    return RunExperiment(config, observer).run()
