"""`harness capacity`: each stack's highest sustained rate within the SLO, searched with real
open-loop probes, and the ratio between stacks with its interval.

On top of the trial driver (`harness.experiments.trial`), a capacity run writes:

    schedules/<rate>qps.jsonl         one schedule per probed rate, replayed by every stack
    <stack>/trial-<k>/probe-<i>/      records.jsonl (raw), records.parquet, logs/ (Locust)
    summary.json                      capacity, interval, status and probes per stack; ratio

A trial of a stack is one search (`search.find_capacity`: exponential probe, then bisection)
on one start of the stack; a later trial's search starts where the stack's last bracketed one
found its capacity. A probe is a replay of the workload at one steady rate: warm-up,
then the measured window, judged like every `harness run` (scheduled-time P99, success over
every request scheduled in the window). A probe is stopped as soon as its failure is certain,
whatever its remaining requests would do (`search.certain_failure`); the requests it never
finished are kept in its records as `stopped`. Before a probe, the stack is let drain what the
last one left.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
from pydantic import Field, ValidationError, model_validator

from harness.errors import UsageError
from harness.experiments.capacity.search import (
    Probe,
    SearchConfig,
    SearchResult,
    certain_failure,
    find_capacity,
)
from harness.experiments.capacity.summary import Judging, Searched, capacity_summary, judge_probe
from harness.experiments.target import Spec, Target
from harness.experiments.trial import Experiment, ExperimentConfig, TrialObserver, WrittenSchedule
from harness.measure.drain import wait_idle
from harness.measure.metrics import Window
from harness.measure.records import write_parquet
from harness.report.results import CapacitySummary, ProbeRow
from harness.workload.schedule import build_schedule, load_tokenizer
from harness.workload.spec import WorkloadSpec, load_workload_spec
from stacks.spec import describe_validation_error
from workloads.records import COLUMNS
from workloads.schedule import Schedule

SCHEDULED, DONE, OK = (COLUMNS.index(name) for name in ("scheduled_s", "done_s", "ok"))


class CapacityConfig(ExperimentConfig):
    trials: int = Field(default=3, ge=1, le=100)
    slo_p99_s: float = Field(default=1.0, gt=0)
    min_success: float = Field(default=0.9999, gt=0, le=1)
    duration_s: float = Field(default=20.0, gt=0, description="measured seconds per probe")
    warmup_s: float | None = Field(default=None, ge=0,
                                   description="per probe; the workload's when unset")
    start_qps: float = Field(default=2.0, gt=0)
    min_qps: float | None = Field(default=None, gt=0,
                                  description="floor when the start fails; start ÷ growth²")
    growth: float = Field(default=2.0, gt=1)
    tolerance: float = Field(default=0.05, gt=0, lt=1)
    max_qps: float = Field(default=100_000.0, gt=0)
    max_probes: int = Field(default=20, ge=1, le=200)

    @model_validator(mode="after")
    def _rates_ordered(self) -> CapacityConfig:
        if self.start_qps > self.max_qps:
            raise ValueError(f"--start-qps ({self.start_qps:g}) must not exceed --max-qps "
                             f"({self.max_qps:g})")
        if self.min_qps is not None and self.min_qps > self.start_qps:
            raise ValueError(f"--min-qps ({self.min_qps:g}) must not exceed --start-qps "
                             f"({self.start_qps:g})")
        return self

    def search(self) -> SearchConfig:
        return SearchConfig(start_qps=self.start_qps, min_qps=self.min_qps, growth=self.growth,
                            tolerance=self.tolerance, max_qps=self.max_qps,
                            max_probes=self.max_probes)


class CapacityObserver(TrialObserver, Protocol):
    def searches_planned(self, searches: int) -> None: ...

    def probe_started(self, stack: str, trial: int, probe: int, rate_qps: float,
                      requests: int) -> None: ...

    def probe_done(self, stack: str, trial: int, row: ProbeRow) -> None: ...

    def search_done(self, stack: str, trial: int, result: SearchResult) -> None: ...


class BuiltSchedule(NamedTuple):
    """A rate's schedule before it is written, and how many requests fall in the window."""

    schedule: Schedule
    in_window: int


class FailureWatch:
    """Judges a probe's records as they arrive and says when its failure is certain."""

    def __init__(self, window: Window, requests: int, slo_s: float, min_success: float) -> None:
        self.window = window
        self.requests = requests
        self.slo_s = slo_s
        self.min_success = min_success
        self.failed = 0
        self.late = 0

    def check(self, rows: list[list[Any]]) -> str | None:
        for row in rows:
            if not self.window.start_s <= row[SCHEDULED] < self.window.end_s:
                continue
            if not row[OK]:
                self.failed += 1
            elif row[DONE] - row[SCHEDULED] > self.slo_s:
                self.late += 1
        if certain_failure(self.requests, self.failed, self.late, self.min_success):
            return (f"failing was certain: {self.failed} failed and {self.late} over the SLO "
                    f"of the {self.requests} requests in the window")
        return None


def rate_label(rate_qps: float) -> str:
    return f"{rate_qps:g}qps"


class CapacityRun(Experiment[CapacityConfig, CapacityObserver]):
    """One `harness capacity`: its schedules per rate, searches and summary."""

    kind = "capacity"

    def __init__(self, config: CapacityConfig, observer: CapacityObserver) -> None:
        self.config = config  # the schedules and the floor check below need it already
        self.search = config.search()
        self.base_workload = load_workload_spec(config.workload)
        self.warmup_s = (self.base_workload.warmup_s if config.warmup_s is None
                         else config.warmup_s)
        self.window = Window(self.warmup_s, config.duration_s)
        self.judging = Judging(self.window, config.slo_p99_s, config.min_success,
                               self.base_workload.stream)
        self.tokenizer = load_tokenizer(self.base_workload.tokenizer_path())
        self._built: dict[float, BuiltSchedule] = {}  # built, not yet written
        self._check_floor_rate()
        super().__init__(config, self.probe_workload(config.start_qps),
                         f"{self.base_workload.name}-capacity", observer)
        self.schedules: dict[float, tuple[WrittenSchedule, int]] = {}
        self.searched = {spec.name: Searched(spec.replicas, [], []) for spec in self.stacks}
        self.bracketed: list[float] = []  # every bracketed search's capacity, in run order
        self.write_inputs("# Every probe's workload; rate_qps is each probe's own rate (here "
                          "the first).\n", warmup_s=self.warmup_s)

    # -- schedules ---------------------------------------------------------------------------
    def probe_workload(self, rate_qps: float) -> WorkloadSpec:
        """The workload at one steady rate, for the probe's duration, judged by the SLO."""
        return self.steady_workload(rate_qps, self.config.duration_s, self.warmup_s)

    def steady_workload(self, rate_qps: float, duration_s: float,
                        warmup_s: float) -> WorkloadSpec:
        """The workload at one steady rate for `duration_s` after `warmup_s`, judged by the
        SLO."""
        changes = {"stages": None, "rate_qps": rate_qps, "duration_s": duration_s,
                   "warmup_s": warmup_s, "slo_s": self.config.slo_p99_s}
        try:
            return WorkloadSpec.model_validate({**self.base_workload.model_dump(), **changes})
        except ValidationError as exc:
            raise UsageError(f"workload {self.base_workload.name} at {rate_qps:g} QPS: "
                             f"{describe_validation_error(exc, WorkloadSpec)}") from exc

    def build(self, rate_qps: float) -> BuiltSchedule:
        """The rate's schedule and how many of its requests fall in the measured window; kept
        until `schedule_for` writes it, so a rate's schedule is built once."""
        if rate_qps not in self._built:
            built = build_schedule(self.probe_workload(rate_qps), self.tokenizer)
            offsets = np.array([entry.offset_s for entry in built.entries])
            in_window = int(((offsets >= self.window.start_s)
                             & (offsets < self.window.end_s)).sum())
            self._built[rate_qps] = BuiltSchedule(built, in_window)
        return self._built[rate_qps]

    def _check_floor_rate(self) -> None:
        """Refuse, before any stack starts, a search whose lowest rate would measure nothing:
        met mid-search, it could only end the run with stacks unmeasured."""
        floor_qps = self.search.floor_qps
        if self.build(floor_qps).in_window == 0:
            raise UsageError(
                f"at {floor_qps:g} QPS, the lowest rate the search may probe (--min-qps; by "
                f"default --start-qps ÷ --growth²), no request falls in the "
                f"{self.config.duration_s:g} s measured window: raise --duration, "
                "--start-qps or --min-qps")

    def schedule_for(self, rate_qps: float) -> tuple[WrittenSchedule, int]:
        """The rate's schedule (written on first use: every stack replays the same bytes at
        the same rate) and its requests in the window. Every rate a search probes is at or
        above the floor `_check_floor_rate` found to put requests in the window."""
        if rate_qps not in self.schedules:
            built, in_window = self.build(rate_qps)
            del self._built[rate_qps]
            path = self.out / "schedules" / f"{rate_label(rate_qps)}.jsonl"
            self.schedules[rate_qps] = (WrittenSchedule.write(built, path), in_window)
        return self.schedules[rate_qps]

    # -- searching ---------------------------------------------------------------------------
    def run(self) -> Path:
        self.observer.searches_planned(len(self.stacks) * self.config.trials)
        return super().run()

    def measure(self, spec: Spec, trial: int, target: Target, trial_dir: Path) -> None:
        numbers = itertools.count(1)
        result = find_capacity(
            lambda rate: self.probe(spec.name, trial, next(numbers), rate, target), self.search,
            hint=self.hint(spec.name))
        self.searched[spec.name].results.append(result)
        if result.capacity_qps is not None and result.failing_qps is not None:
            self.bracketed.append(result.capacity_qps)
        self.observer.search_done(spec.name, trial, result)

    def hint(self, stack: str) -> float | None:
        """Where the next search of a stack starts (`search.find_capacity`): at the capacity
        its own latest bracketed search found; for its first search, at the latest any stack's
        found (trials are interleaved, so that search ran just before this one, and stacks
        compared are seldom far apart; where they are, the steps grow until they reach it).
        None (from the start rate) for the run's first search, where none has closed its
        bracket yet, or where the stack's own searches never did."""
        searched = self.searched[stack].results
        if not searched:
            return self.bracketed[-1] if self.bracketed else None
        own = [result.capacity_qps for result in searched
               if result.capacity_qps is not None and result.failing_qps is not None]
        return own[-1] if own else None

    def probe(self, stack: str, trial: int, number: int, rate_qps: float,
              target: Target) -> Probe:
        schedule, in_window = self.schedule_for(rate_qps)
        probe_dir = self.out / stack / f"trial-{trial}" / f"probe-{number}"
        drained_s = wait_idle(target.endpoint, target.headers())
        config = self.config
        watch = FailureWatch(self.window, in_window, config.slo_p99_s, config.min_success)
        self.observer.probe_started(stack, trial, number, rate_qps,
                                             len(schedule.offsets_s))
        frame, stopped = self.replay(target, schedule, probe_dir, trial, watch.check)
        write_parquet(frame, probe_dir / "records.parquet")
        row = judge_probe(frame, self.judging, stopped, trial=trial, probe=number,
                          rate_qps=rate_qps, drained_s=round(drained_s, 3),
                          schedule_sha256=schedule.sha256,
                          schedule=str(schedule.path.relative_to(self.out)),
                          records=str((probe_dir / "records.parquet").relative_to(self.out)))
        self.searched[stack].probes.append(row)
        self.observer.probe_done(stack, trial, row)
        return Probe(rate_qps, row.passed, nan_for_none(row.latency_p99_s),
                     nan_for_none(row.success_rate), row.throughput_qps)

    # -- the summary -------------------------------------------------------------------------
    def summary(self) -> CapacitySummary:
        config = self.config
        return capacity_summary(
            {"run": self.out.name, "workload": self.base_workload.name,
             "search": {**config.model_dump(include={"start_qps", "growth", "tolerance",
                                                     "max_qps", "max_probes", "duration_s"}),
                        "min_qps": self.search.floor_qps, "warmup_s": self.warmup_s},
             "trials": config.trials},
            self.judging, self.search, self.searched, self.ablation)


def nan_for_none(value: float | None) -> float:
    return math.nan if value is None else value


def run_capacity(config: CapacityConfig, observer: CapacityObserver) -> Path:
    return CapacityRun(config, observer).run()
