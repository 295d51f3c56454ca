"""`harness capacity`: each stack's highest sustained rate within the SLO, searched with real
open-loop probes, and the ratio between stacks with its interval.

    results/<run-id>/
      run.json                          what was asked, the run's id, where it ran
      specs/<stack>.yaml, specs/workload.yaml
      schedules/<rate>qps.jsonl         one schedule per probed rate, replayed by every stack
      <stack>/trial-<k>/logs/           replica and balancer logs of that trial's stack
      <stack>/trial-<k>/probe-<i>/      records.jsonl (raw), records.parquet, logs/ (Locust)
      summary.json                      capacity, interval, status and probes per stack; ratio

Trials are interleaved (A B A B): in each, every stack is started once, searched
(`harness.capacity.find_capacity`: exponential probe, then bisection) and stopped. A probe is
one fixed-duration run of the workload at a steady rate: warm-up, then the measured window,
judged like every `harness run` (scheduled-time P99, success over every request scheduled in
the window). A probe is stopped as soon as its failure is certain, whatever its remaining
requests would do (`harness.capacity.certain_failure`); the requests it never finished are
kept in its records as `stopped`. Before a probe, the stack is let drain what the last one
left. The summary is rewritten after every search: a crash keeps every finished trial.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.ablation import ablation_variants
from harness.capacity import (
    Probe,
    SearchConfig,
    SearchResult,
    capacity_ratio,
    certain_failure,
    find_capacity,
    passes,
    stack_capacity,
)
from harness.environment import capture_environment
from harness.errors import HarnessError
from harness.loadgen import LoadJob, run_load
from harness.metrics import Window, json_safe, summarize
from harness.records import STOPPED, UNRECORDED, account_for_schedule, read_records, write_parquet
from harness.run import (
    Target,
    auth_headers,
    default_out_dir,
    fresh_out_dir,
    load_stacks,
    serving,
)
from harness.schedule import Schedule, build_schedule, load_tokenizer, write_schedule
from harness.workload import WorkloadSpec, load_workload_spec
from stacks.launcher import StartObserver
from stacks.spec import EndpointSpec, StackSpec, describe_validation_error
from workloads.records import COLUMNS, FLUSH_INTERVAL_S

# What a stack reports as work in progress: our balancer's in-flight requests, or a vLLM
# server's running and waiting ones when the endpoint is vLLM itself.
BUSY_METRICS = frozenset({"balancer_inflight_requests", "vllm:num_requests_running",
                          "vllm:num_requests_waiting"})
DRAIN_LIMIT_S = 60.0
SETTLE_S = 2.0  # the pause before a probe when the endpoint reports no load


class CapacityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stacks: list[str] = Field(default=["diy", "optimized"], min_length=1)
    workload: str = "writing_assistant"
    slo_p99_s: float = Field(default=1.0, gt=0)
    min_success: float = Field(default=0.9999, gt=0, le=1)
    trials: int = Field(default=3, ge=1, le=100)
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
    workers: int = Field(default=0, ge=0, le=64)
    out: Path | None = None
    experiment: str | None = None
    ablate: bool = False  # add variants of the last launched stack, one optimization off each

    @model_validator(mode="after")
    def _rates_ordered(self) -> CapacityConfig:
        if self.start_qps > self.max_qps:
            raise ValueError(f"start_qps ({self.start_qps:g}) must not exceed max_qps "
                             f"({self.max_qps:g})")
        if self.min_qps is not None and self.min_qps > self.start_qps:
            raise ValueError(f"min_qps ({self.min_qps:g}) must not exceed start_qps "
                             f"({self.start_qps:g})")
        return self

    def search(self) -> SearchConfig:
        return SearchConfig(start_qps=self.start_qps, min_qps=self.min_qps, growth=self.growth,
                            tolerance=self.tolerance, max_qps=self.max_qps,
                            max_probes=self.max_probes)


class CapacityObserver(Protocol):
    def searches_planned(self, searches: int) -> None: ...

    def stack_starting(self, stack: str, trial: int) -> StartObserver: ...

    def probe_started(self, stack: str, trial: int, probe: int, rate_qps: float,
                      requests: int) -> None: ...

    def load_progress(self, recorded: int) -> None: ...

    def probe_done(self, stack: str, trial: int, row: dict[str, Any]) -> None: ...

    def search_done(self, stack: str, trial: int, result: SearchResult) -> None: ...


class BuiltSchedule(NamedTuple):
    """A rate's schedule before it is written: its send offsets and how many fall in the
    measured window."""

    schedule: Schedule
    offsets_s: np.ndarray
    in_window: int


@dataclass(frozen=True, slots=True)
class RateSchedule:
    """The schedule of one probed rate, written once and replayed by every stack."""

    rate_qps: float
    path: Path
    sha256: str
    offsets_s: np.ndarray
    window_requests: int
    last_offset_s: float


class FailureWatch:
    """Reads a probe's records as they arrive and says when its failure is certain."""

    def __init__(self, records: Path, window: Window, requests: int, slo_s: float,
                 min_success: float) -> None:
        self.records = records
        self.window = window
        self.requests = requests
        self.slo_s = slo_s
        self.min_success = min_success
        self.failed = 0
        self.late = 0
        self._offset = 0
        self._header_read = False
        self._scheduled = COLUMNS.index("scheduled_s")
        self._done = COLUMNS.index("done_s")
        self._ok = COLUMNS.index("ok")

    def _read_new(self) -> None:
        if not self.records.is_file():
            return
        with self.records.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        whole = chunk[:chunk.rfind(b"\n") + 1]  # a torn last line waits for its end
        self._offset += len(whole)
        for line in whole.splitlines():
            if not self._header_read:
                self._header_read = True
                continue
            row = json.loads(line)
            if not self.window.start_s <= row[self._scheduled] < self.window.end_s:
                continue
            if not row[self._ok]:
                self.failed += 1
            elif row[self._done] - row[self._scheduled] > self.slo_s:
                self.late += 1

    def check(self) -> str | None:
        self._read_new()
        if certain_failure(self.requests, self.failed, self.late, self.min_success):
            return (f"failing was certain: {self.failed} failed and {self.late} over the SLO "
                    f"of the {self.requests} requests in the window")
        return None


def busy_requests(endpoint: str, headers: dict[str, str]) -> int | None:
    """Requests the endpoint reports in progress (None: it reports none we know)."""
    request = urllib.request.Request(f"{endpoint}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            text = answer.read().decode()
        samples = [sample for family in text_string_to_metric_families(text)
                   for sample in family.samples if sample.name in BUSY_METRICS]
    except (OSError, ValueError):
        return None
    return int(sum(sample.value for sample in samples)) if samples else None


def wait_idle(endpoint: str, headers: dict[str, str]) -> float:
    """Wait until the endpoint reports nothing in progress (at most `DRAIN_LIMIT_S`), or
    `SETTLE_S` where it reports nothing; the seconds waited."""
    started = time.monotonic()
    while (busy := busy_requests(endpoint, headers)) is not None and busy > 0:
        if time.monotonic() - started > DRAIN_LIMIT_S:
            break
        time.sleep(0.5)
    if busy is None:
        time.sleep(SETTLE_S)
    return time.monotonic() - started


def rate_label(rate_qps: float) -> str:
    return f"{rate_qps:g}qps"


class CapacityRun:
    """One `harness capacity`: its folder, schedules, searches and summary."""

    def __init__(self, config: CapacityConfig, observer: CapacityObserver) -> None:
        self.config = config
        self.observer = observer
        self.search = config.search()
        self.base_workload = load_workload_spec(config.workload)
        self.warmup_s = (self.base_workload.warmup_s if config.warmup_s is None
                         else config.warmup_s)
        self.window = Window(self.warmup_s, config.duration_s)
        self.stacks = load_stacks(config.stacks)
        self.ablation: tuple[str, dict[str, str]] | None = None
        if config.ablate:
            studied, variant_names, variants = ablation_variants(self.stacks)
            self.stacks = [*self.stacks, *variants]
            self.ablation = (studied, variant_names)
        self.tokenizer = load_tokenizer(self.base_workload.tokenizer_path())
        self._built: dict[float, BuiltSchedule] = {}  # built, not yet written
        self._check_floor_rate()
        self.out = fresh_out_dir(config.out or default_out_dir(
            f"{self.base_workload.name}-capacity"))
        self.schedules: dict[float, RateSchedule] = {}
        self.results: dict[str, list[SearchResult]] = {spec.name: [] for spec in self.stacks}
        self.probes: dict[str, list[dict[str, Any]]] = {spec.name: [] for spec in self.stacks}
        self.summary_path = self.out / "summary.json"
        self._write_inputs()

    # -- inputs ------------------------------------------------------------------------------
    def probe_workload(self, rate_qps: float) -> WorkloadSpec:
        """The workload at one steady rate, for the probe's duration, judged by the SLO."""
        changes = {"stages": None, "rate_qps": rate_qps, "duration_s": self.config.duration_s,
                   "warmup_s": self.warmup_s, "slo_s": self.config.slo_p99_s}
        try:
            return WorkloadSpec.model_validate({**self.base_workload.model_dump(), **changes})
        except ValidationError as exc:
            raise HarnessError(f"workload {self.base_workload.name} at {rate_qps:g} QPS: "
                               f"{describe_validation_error(exc, WorkloadSpec)}") from exc

    def build(self, rate_qps: float) -> BuiltSchedule:
        """The rate's schedule and how many of its requests fall in the measured window; kept
        until `schedule_for` writes it, so a rate's schedule is built once."""
        if rate_qps not in self._built:
            built = build_schedule(self.probe_workload(rate_qps), self.tokenizer)
            offsets = np.array([entry.offset_s for entry in built.entries])
            in_window = int(((offsets >= self.window.start_s)
                             & (offsets < self.window.end_s)).sum())
            self._built[rate_qps] = BuiltSchedule(built, offsets, in_window)
        return self._built[rate_qps]

    def _check_floor_rate(self) -> None:
        """Refuse, before any stack starts, a search whose lowest rate would measure nothing:
        met mid-search, it could only end the run with stacks unmeasured."""
        floor_qps = self.search.floor_qps
        if self.build(floor_qps).in_window == 0:
            raise HarnessError(
                f"at {floor_qps:g} QPS, the lowest rate the search may probe (--min-qps; by "
                f"default --start-qps ÷ --growth²), no request falls in the "
                f"{self.config.duration_s:g} s measured window: raise --duration, --start-qps "
                "or --min-qps")

    def _write_inputs(self) -> None:
        specs = self.out / "specs"
        specs.mkdir()
        for spec in self.stacks:
            (specs / f"{spec.name}.yaml").write_text(yaml.safe_dump(spec.model_dump()))
        first = self.probe_workload(self.config.start_qps)
        (specs / "workload.yaml").write_text(
            "# Every probe's workload; rate_qps is each probe's own rate (here the first).\n"
            + yaml.safe_dump(first.model_dump()))
        (self.out / "run.json").write_text(json.dumps(
            {"kind": "capacity", **self.config.model_dump(mode="json"), "out": str(self.out),
             "warmup_s": self.warmup_s,
             "experiment": self.config.experiment or self.base_workload.name,
             "run_id": uuid.uuid4().hex,
             "started": datetime.now().astimezone().isoformat(timespec="seconds"),
             "environment": capture_environment()}, indent=2))

    def schedule_for(self, rate_qps: float) -> RateSchedule:
        """The rate's schedule, built and written on first use: both stacks replay the same
        bytes at the same rate."""
        if rate_qps not in self.schedules:
            built, offsets, in_window = self.build(rate_qps)
            path = self.out / "schedules" / f"{rate_label(rate_qps)}.jsonl"
            sha256 = write_schedule(built, path)
            if in_window == 0:
                raise HarnessError(f"at {rate_qps:g} QPS no request falls in the "
                                   f"{self.config.duration_s:g} s measured window: raise "
                                   "--duration or --start-qps")
            self.schedules[rate_qps] = RateSchedule(rate_qps, path, sha256, offsets, in_window,
                                                    built.header["last_offset_s"])
            del self._built[rate_qps]
        return self.schedules[rate_qps]

    # -- searching ---------------------------------------------------------------------------
    def run(self) -> Path:
        self.observer.searches_planned(len(self.stacks) * self.config.trials)
        for trial in range(1, self.config.trials + 1):
            for spec in self.stacks:
                self.search_stack(spec, trial)
                self.write_summary()
        return self.summary_path

    def search_stack(self, spec: StackSpec | EndpointSpec, trial: int) -> None:
        trial_dir = self.out / spec.name / f"trial-{trial}"
        with serving(spec, trial_dir / "logs",
                     self.observer.stack_starting(spec.name, trial)) as target:
            numbers = itertools.count(1)
            result = find_capacity(
                lambda rate: self.probe(spec.name, trial, next(numbers), rate, target),
                self.search)
        self.results[spec.name].append(result)
        self.observer.search_done(spec.name, trial, result)

    def probe(self, stack: str, trial: int, number: int, rate_qps: float,
              target: Target) -> Probe:
        schedule = self.schedule_for(rate_qps)
        probe_dir = self.out / stack / f"trial-{trial}" / f"probe-{number}"
        raw_records = probe_dir / "records.jsonl"
        drained_s = wait_idle(target.endpoint, auth_headers(stack, target.api_key_env))
        watch = FailureWatch(raw_records, self.window, schedule.window_requests,
                             self.config.slo_p99_s, self.config.min_success)
        self.observer.probe_started(stack, trial, number, rate_qps, len(schedule.offsets_s))
        workload = self.base_workload
        stopped = run_load(LoadJob(
            locustfile=workload.locustfile_path(), host=target.endpoint,
            schedule=schedule.path, records=raw_records, log_dir=probe_dir / "logs",
            model=target.model, workers=self.config.workers, senders=workload.max_in_flight,
            api_key_env=target.api_key_env,
            expected_s=schedule.last_offset_s + workload.timeout_s + FLUSH_INTERVAL_S,
        ), self.observer.load_progress, watch.check)
        header, frame = read_records(raw_records)
        if header["schedule_sha256"] != schedule.sha256:
            raise HarnessError(f"{raw_records} replayed schedule {header['schedule_sha256']}, "
                               f"not {schedule.path} ({schedule.sha256})")
        frame = account_for_schedule(frame, schedule.offsets_s,
                                     STOPPED if stopped else UNRECORDED).assign(trial=trial)
        write_parquet(frame, probe_dir / "records.parquet")
        figures = summarize(frame, self.window, self.config.slo_p99_s, workload.stream)
        passed = stopped is None and passes(figures["latency_p99_s"], figures["success_rate"],
                                            self.config.slo_p99_s, self.config.min_success)
        row = {
            "trial": trial, "probe": number, "rate_qps": rate_qps, "passed": passed,
            "stopped_early": stopped, "drained_s": round(drained_s, 3),
            **{key: figures[key] for key in (
                "requests", "ok_requests", "failed_requests", "success_rate", "offered_qps",
                "throughput_qps", "goodput_qps", "latency_p50_s", "latency_p90_s",
                "latency_p99_s", "service_p99_s", "send_lag_p99_s", "errors")},
            "schedule_sha256": schedule.sha256,
            "schedule": str(schedule.path.relative_to(self.out)),
            "records": str((probe_dir / "records.parquet").relative_to(self.out)),
        }
        self.probes[stack].append(row)
        self.observer.probe_done(stack, trial, row)
        return Probe(rate_qps, passed, figures["latency_p99_s"], figures["success_rate"],
                     figures["throughput_qps"])

    # -- the summary -------------------------------------------------------------------------
    def write_summary(self) -> dict[str, Any]:
        stacks = {spec.name: {**stack_capacity(self.results[spec.name], self.search,
                                               spec.replicas),
                              "probes": self.probes[spec.name]}
                  for spec in self.stacks if self.results[spec.name]}
        baseline = self.stacks[0].name
        ratios = {name: capacity_ratio(name, row, baseline, stacks[baseline])
                  for name, row in stacks.items() if name != baseline and baseline in stacks}
        summary = {
            "kind": "capacity", "run": self.out.name, "workload": self.base_workload.name,
            "slo": {"p99_s": self.config.slo_p99_s, "min_success": self.config.min_success},
            "search": {**self.config.model_dump(
                include={"start_qps", "growth", "tolerance", "max_qps", "max_probes",
                         "duration_s"}), "min_qps": self.search.floor_qps,
                "warmup_s": self.warmup_s},
            "window": {"start_s": self.window.start_s, "length_s": self.window.length_s},
            "trials": self.config.trials, "baseline": baseline, "stacks": stacks,
            "ratio": next(iter(ratios.values()), None), "ratios": ratios,
        }
        if self.ablation is not None:
            studied, variant_names = self.ablation
            summary["ablation"] = {"stack": studied, "variants": variant_names,
                                   "contributions": {
                                       optimization: capacity_ratio(studied, stacks[studied],
                                                                    variant, stacks[variant])
                                       for optimization, variant in variant_names.items()
                                       if studied in stacks and variant in stacks}}
        staging = self.summary_path.with_suffix(".partial")
        staging.write_text(json.dumps(json_safe(summary), indent=2))
        staging.replace(self.summary_path)
        return summary


def run_capacity(config: CapacityConfig, observer: CapacityObserver) -> Path:
    return CapacityRun(config, observer).run()
