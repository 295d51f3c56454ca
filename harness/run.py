"""`harness run`: the same schedule against each stack in turn, measured from records on disk.

    results/<run-id>/
      run.json                      what was asked (stacks, workload, trials, workers), the
                                    run's id, and where it ran (commit, hardware, versions)
      specs/<stack>.yaml, specs/workload.yaml
      schedule.jsonl                every request, with its send offset (sha256 in summary)
      <stack>/records/trial-<k>.parquet   one row per request
      <stack>/trial-<k>/            replica, balancer and load-generator logs, raw records
      summary.json                  per stack metrics, ratios to the first stack

One stack at a time (stacks never share the cores), trials interleaved A B A B, each stack
started fresh, warmed by the schedule's warm-up, stopped after its trial. Records reach disk
first; the summary is rewritten after every trial, so a crash keeps what was measured.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from harness.ablation import ablation_variants, contributions
from harness.environment import capture_environment
from harness.errors import HarnessError
from harness.loadgen import LoadJob, run_load
from harness.metrics import Window, json_safe, ratios, summarize
from harness.records import account_for_schedule, read_records, write_parquet
from harness.schedule import Schedule, build_schedule, load_tokenizer, write_schedule
from harness.serve import ensure_model
from harness.workload import WorkloadSpec, load_workload_spec
from stacks.launcher import Stack, StartObserver
from stacks.spec import PROJECT_ROOT, EndpointSpec, StackSpec, load_stack_spec


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stacks: list[str] = Field(default=["diy", "optimized"], min_length=1)
    workload: str = "writing_assistant"
    rate_qps: float | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, gt=0)
    trials: int = Field(default=1, ge=1, le=100)
    workers: int = Field(default=0, ge=0, le=64)
    out: Path | None = None
    experiment: str | None = None  # MLflow experiment; the workload's name when unset
    ablate: bool = False  # add variants of the last launched stack, one optimization off each


class RunObserver(Protocol):
    def stack_starting(self, stack: str, trial: int) -> StartObserver: ...

    def load_started(self, stack: str, trial: int, requests: int) -> None: ...

    def load_progress(self, recorded: int) -> None: ...

    def trial_done(self, stack: str, trial: int, summary: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """Where a stack answers, and what to ask for."""

    endpoint: str
    model: str
    api_key_env: str


def default_out_dir(workload: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return PROJECT_ROOT / "results" / f"{stamp}-{workload}"


def fresh_out_dir(out: Path) -> Path:
    """Results never overwrite results: the folder must be new or empty."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HarnessError(f"{out} already holds files; choose a new --out (results are never "
                           "overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_stacks(names: list[str]) -> list[StackSpec | EndpointSpec]:
    """The stacks to drive. Endpoints are asked once, here, which model they serve (the load
    generator is told), so one that does not answer fails before anything starts."""
    specs = [load_stack_spec(name) for name in names]
    seen = [spec.name for spec in specs]
    if len(set(seen)) != len(seen):
        raise HarnessError(f"stack names must differ, got {', '.join(seen)}")
    return [spec.model_copy(update={"model": check_endpoint(spec)})
            if isinstance(spec, EndpointSpec) else spec for spec in specs]


def auth_headers(stack: str, api_key_env: str | None) -> dict[str, str]:
    """The bearer header for a stack whose key is in `api_key_env` (none without one)."""
    if not api_key_env:
        return {}
    if api_key_env not in os.environ:
        raise HarnessError(f"stack {stack}: environment variable {api_key_env} (api_key_env) "
                           "is not set")
    return {"authorization": f"Bearer {os.environ[api_key_env]}"}


@contextmanager
def serving(spec: StackSpec | EndpointSpec, log_dir: Path,
            observer: StartObserver) -> Iterator[Target]:
    """A launched stack (stopped on the way out), or an endpoint running elsewhere (checked
    to answer when the experiment starts)."""
    if isinstance(spec, EndpointSpec):
        yield Target(spec.endpoint, spec.model or "", spec.api_key_env or "")
        return
    spec = ensure_model(spec)
    stack = Stack(spec, log_dir)
    try:
        stack.start(observer)
        yield Target(stack.endpoint, spec.engine.served_model_name
                     or str(spec.engine.model_path()), "")
    finally:
        stack.stop()


def check_endpoint(spec: EndpointSpec) -> str:
    """The model to ask an endpoint for (the spec's, or the first it lists); fails before any
    load if it does not answer /v1/models."""
    request = urllib.request.Request(f"{spec.endpoint}/v1/models",
                                     headers=auth_headers(spec.name, spec.api_key_env))
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            listed = json.load(answer)["data"][0]["id"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise HarnessError(f"stack {spec.name}: {spec.endpoint}/v1/models did not answer with "
                           f"a model: {exc!r}") from exc
    return spec.model or str(listed)


class Experiment:
    """One `harness run`: its folder, its schedule, its stacks, and what was measured."""

    def __init__(self, config: RunConfig, observer: RunObserver) -> None:
        self.config = config
        self.observer = observer
        workload = load_workload_spec(config.workload)
        self.workload: WorkloadSpec = workload.with_overrides(config.rate_qps, config.duration_s)
        self.stacks = load_stacks(config.stacks)
        self.ablation: tuple[str, dict[str, str]] | None = None
        if config.ablate:
            studied, variant_names, variants = ablation_variants(self.stacks)
            self.stacks = [*self.stacks, *variants]
            self.ablation = (studied, variant_names)
        self.out = fresh_out_dir(config.out or default_out_dir(self.workload.name))
        self.window = Window(self.workload.warmup_s, self.workload.measured_s)
        self.schedule_path = self.out / "schedule.jsonl"
        self.schedule: Schedule = build_schedule(self.workload,
                                                 load_tokenizer(self.workload.tokenizer_path()))
        self.schedule_sha256 = write_schedule(self.schedule, self.schedule_path)
        self.offsets_s = np.array([entry.offset_s for entry in self.schedule.entries])
        self.trials: dict[str, list[pd.DataFrame]] = {spec.name: [] for spec in self.stacks}
        self.summary_path = self.out / "summary.json"
        self._write_inputs()

    def _write_inputs(self) -> None:
        specs = self.out / "specs"
        specs.mkdir()
        for spec in self.stacks:
            (specs / f"{spec.name}.yaml").write_text(yaml.safe_dump(spec.model_dump()))
        (specs / "workload.yaml").write_text(yaml.safe_dump(self.workload.model_dump()))
        (self.out / "run.json").write_text(json.dumps(
            {**self.config.model_dump(mode="json"), "out": str(self.out),
             "experiment": self.config.experiment or self.workload.name,
             "run_id": uuid.uuid4().hex,
             "started": datetime.now().astimezone().isoformat(timespec="seconds"),
             "environment": capture_environment()}, indent=2))

    def run(self) -> Path:
        for trial in range(1, self.config.trials + 1):
            for spec in self.stacks:
                self.run_trial(spec, trial)
                self.write_summary()
        return self.summary_path

    def run_trial(self, spec: StackSpec | EndpointSpec, trial: int) -> None:
        trial_dir = self.out / spec.name / f"trial-{trial}"
        raw_records = trial_dir / "records.jsonl"
        with serving(spec, trial_dir / "logs", self.observer.stack_starting(spec.name, trial)) \
                as target:
            self.observer.load_started(spec.name, trial, len(self.schedule.entries))
            run_load(LoadJob(
                locustfile=self.workload.locustfile_path(), host=target.endpoint,
                schedule=self.schedule_path, records=raw_records, log_dir=trial_dir / "logs",
                model=target.model, workers=self.config.workers,
                senders=self.workload.max_in_flight,
                api_key_env=target.api_key_env,
                expected_s=self.schedule.header["last_offset_s"] + self.workload.timeout_s,
            ), self.observer.load_progress)
        header, frame = read_records(raw_records)
        if header["schedule_sha256"] != self.schedule_sha256:
            raise HarnessError(f"{raw_records} replayed schedule {header['schedule_sha256']}, "
                               f"not this run's {self.schedule_sha256}")
        frame = account_for_schedule(frame, self.offsets_s).assign(trial=trial)
        write_parquet(frame, self.out / spec.name / "records" / f"trial-{trial}.parquet")
        self.trials[spec.name].append(frame)
        self.observer.trial_done(spec.name, trial, self.summarize_stack(frame))

    def summarize_stack(self, records: pd.DataFrame) -> dict[str, Any]:
        return summarize(records, self.window, self.workload.slo_s, self.workload.stream)

    def write_summary(self) -> dict[str, Any]:
        stacks: dict[str, dict[str, Any]] = {}
        for spec in self.stacks:
            if not self.trials[spec.name]:
                continue
            records = pd.concat(self.trials[spec.name], ignore_index=True)
            # Every trial's records were checked to carry this hash when they were read.
            stacks[spec.name] = {**self.summarize_stack(records),
                                 "schedule_sha256": self.schedule_sha256,
                                 "records": f"{spec.name}/records"}
        baseline = self.stacks[0].name
        summary = {
            "run": self.out.name, "workload": self.workload.name,
            "schedule_sha256": self.schedule_sha256,
            "window": {"start_s": self.window.start_s, "length_s": self.window.length_s},
            "baseline": baseline, "stacks": stacks,
            "ratios": ratios(stacks, baseline) if baseline in stacks else {},
        }
        if self.ablation is not None:
            studied, variant_names = self.ablation
            summary["ablation"] = {"stack": studied, "variants": variant_names,
                                   "contributions": contributions(stacks, studied,
                                                                  variant_names)}
        staging = self.summary_path.with_suffix(".partial")
        staging.write_text(json.dumps(json_safe(summary), indent=2))
        staging.replace(self.summary_path)
        return summary


def run_experiment(config: RunConfig, observer: RunObserver) -> Path:
    return Experiment(config, observer).run()
