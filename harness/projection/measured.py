"""What the simulation is calibrated on: measured load levels, read from a results folder.

Two kinds of folder give levels:

- a `harness capacity` run: each probe that ran whole is one level, one probe window long;
- a `harness run` of a workload made only of steady stages (`workloads/calibration_levels.yaml`):
  each stage is one level, its first `SETTLE_S` left out, pooled over the run's trials. A
  search's probes are short and sit where the search happened to go; these levels are chosen
  beforehand, run longer, and repeat, so one slow request weighs less in them. The stages at
  the lowest rate, between the others, say how fast the machine was around each level.

Either way the work of a request alone is taken from the lowest level's service times
(answer done − sent) of the requests that were alone on their replica (`solo_work`), and each
level carries what its tail rests on: each trial's own P99, and over its requests' lives,
all of them and the slowest 1 %, the host's steal, the cores' speed and the CPU taken by
processes outside the run (`harness.measure.host_timeline`, from each trial's samples);
where the slowest saw much more of any, the machine, not the stack, set its P99.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd

from harness.errors import UsageError
from harness.experiments.trial import RAW_RECORDS
from harness.measure.host_timeline import request_host, tail_means
from harness.measure.metrics import Window, in_window, percentiles, summarize
from harness.projection.solo_work import mark_alone, solo_service
from harness.report.results import CapacitySummary, ProbeRow, RunInfo, read_result
from harness.report.saved import read_specs, read_trials
from harness.workload.spec import Steady, WorkloadSpec

MIN_LEVELS = 3
SETTLE_S = 10.0  # of each stage: the queue left by the stage before drains or builds
GROWTH = 1.5  # a stage whose P50 grows by more than this from its first half to its second


@dataclass(frozen=True)
class Arrivals:
    """When the measured schedule sent requests over one stretch at a level: its warm-up,
    then its measured window. Every trial of a run replays one schedule, so its bursts are
    the same in each and the simulation of the level replays them too."""

    times_s: tuple[float, ...]  # from the stretch's start, ascending
    warmup_s: float
    duration_s: float


def arrivals_in(records: pd.DataFrame, window: Window, warmup_s: float) -> Arrivals:
    """The schedule's arrivals from `warmup_s` before `window` to its end: each scheduled
    request once (its `index`), however many trials carry it."""
    start = window.start_s - warmup_s
    stretch = in_window(records, Window(start, warmup_s + window.length_s))
    times = stretch.drop_duplicates("index")["scheduled_s"] - start
    return Arrivals(tuple(np.sort(times.to_numpy(dtype=float))), warmup_s, window.length_s)


@dataclass(frozen=True)
class Level:
    rate_qps: float
    p50_s: float
    p99_s: float
    requests: int
    duration_s: float  # the measured window at this rate, per trial
    warmup_s: float  # at this rate before it
    # How slow the machine was around this level against the lowest level's stages (1: as
    # then), measured by the stages at the lowest rate around it. Reported, not applied.
    speed: float = 1.0
    # Over the lives of the level's answered requests, and of its slowest 1 % (those that set
    # its P99): the host's steal share, the cores' speed (1: as usual in their trial) and the
    # share of CPU time outside the run; None where the run sampled none (`host_timeline`).
    steal: float | None = None
    steal_slowest: float | None = None
    core_speed: float | None = None
    core_speed_slowest: float | None = None
    outside: float | None = None
    outside_slowest: float | None = None
    # Each trial's own P99 here: pooled, a level's P99 is near its slowest trial's.
    p99_trials: tuple[float, ...] = ()
    # The measured arrivals, one stretch per window pooled here; none: Poisson at the rate.
    arrivals: tuple[Arrivals, ...] = ()


@dataclass(frozen=True)
class Measured:
    stack: str
    replicas: int
    policy: str
    levels: list[Level]
    work_s: np.ndarray  # service times at the lowest level, of the requests alone there
    front_servers: int = 1  # API server processes per replica (`api_server_count`)
    work_source: str = ""  # where `work_s` came from, in words (`SoloWork.source`)

    def solo_work(self, front_s: float = 0.0) -> np.ndarray:
        """The service times of requests alone as the engine takes them: less the API
        server's `front_s`. At least a millisecond: a front stage longer than a request's
        whole service time leaves the engine next to nothing, not less."""
        return np.maximum(self.work_s - front_s, 1e-3)


def read_measured(run: Path, stack: str) -> Measured:
    """The load levels and solo work of `stack` in the results folder at `run`."""
    if not (run / "run.json").is_file():
        raise UsageError(f"--calibrate-from {run}: no run.json there; give a `harness capacity` "
                         "folder or a `harness run --workload calibration_levels` folder")
    kind = read_result(run / "run.json", RunInfo).kind
    if kind == "capacity":
        return from_capacity(run, stack)
    if kind == "comparison":
        return from_steady_stages(run, stack)
    raise UsageError(f"--calibrate-from {run}: a {kind} run has no load levels; give a "
                     "`harness capacity` folder or a `harness run --workload calibration_levels` "
                     "folder")


@dataclass(frozen=True)
class Setup:
    replicas: int
    policy: str
    front_servers: int


def stack_setup(run: Path, stack: str) -> Setup:
    """Replicas, balancer policy and API servers per replica of `stack`, as the run wrote its
    spec."""
    spec = read_specs(run, [stack])[0].get(stack, {})
    return Setup(int(spec.get("replicas", 1)),
                 str(spec.get("balancer", {}).get("policy", "round_robin")),
                 int(spec.get("engine", {}).get("api_server_count", 1)))


def too_few(run: Path, stack: str, found: int, what: str) -> UsageError:
    return UsageError(f"--calibrate-from {run}: {stack} has {found} {what}; calibration needs "
                      f"{MIN_LEVELS} load levels")


def whole_probes(probes: list[ProbeRow]) -> list[ProbeRow]:
    return sorted((p for p in probes if p.stopped_early is None and p.latency_p50_s
                   and p.latency_p99_s and math.isfinite(p.latency_p99_s)),
                  key=lambda p: p.offered_qps)


def from_capacity(run: Path, stack: str) -> Measured:
    summary = read_result(run / "summary.json", CapacitySummary)
    if stack not in summary.stacks:
        raise UsageError(f"--calibrate-from {run}: no stack {stack!r} there (it has "
                         f"{', '.join(summary.stacks)})")
    measured = summary.stacks[stack]
    probes = whole_probes(measured.probes)
    if len(probes) < MIN_LEVELS:
        raise too_few(run, stack, len(probes), "probe(s) that ran whole")
    setup = stack_setup(run, stack)
    replicas = int(measured.replicas or setup.replicas)
    work = solo_service(mark_alone(pd.read_parquet(run / probes[0].records)))
    window = Window(summary.search.warmup_s, summary.search.duration_s)
    levels = []
    for p in probes:
        records = probe_records(run, stack, p)
        levels.append(Level(p.offered_qps, float(p.latency_p50_s or 0),
                            float(p.latency_p99_s or 0), p.requests, summary.search.duration_s,
                            summary.search.warmup_s, **tail_of(in_window(records, window)),
                            arrivals=(arrivals_in(records, window, summary.search.warmup_s),)))
    return Measured(stack, replicas, setup.policy, levels, work.service_s, setup.front_servers,
                    work.source)


def probe_records(run: Path, stack: str, probe: ProbeRow) -> pd.DataFrame:
    """A probe's records, with the host over each request's life (`with_host`)."""
    records = run / probe.records
    return with_host(pd.read_parquet(records), run / stack / f"trial-{probe.trial}",
                     records.parent / RAW_RECORDS)


def with_host(frame: pd.DataFrame, trial_dir: Path, raw_records: Path) -> pd.DataFrame:
    """The frame with `steal`, `core_speed` and `outside` over each request's life
    (`host_timeline.request_host`)."""
    return frame.join(request_host(frame, trial_dir, raw_records))


def trial_records(run: Path, stack: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A trial's records of a `harness run`, the requests alone marked, with the host over
    each one's life."""
    trial_dir = run / stack / f"trial-{int(frame['trial'].iloc[0])}"
    return with_host(mark_alone(frame), trial_dir, trial_dir / RAW_RECORDS)


class Tail(TypedDict):
    steal: float | None
    steal_slowest: float | None
    core_speed: float | None
    core_speed_slowest: float | None
    outside: float | None
    outside_slowest: float | None
    p99_trials: tuple[float, ...]


def tail_of(part: pd.DataFrame) -> Tail:
    """What a level's records say of its tail beyond its P99: the host's steal, the cores'
    speed and the CPU taken outside the run over the lives of its answered requests and of
    its slowest 1 %, and each trial's own P99."""
    ok = part[part["ok"]]
    latency = ok["done_s"] - ok["scheduled_s"]
    steal, steal_slowest = tail_means(latency, ok["steal"])
    speed, speed_slowest = tail_means(latency, ok["core_speed"])
    outside, outside_slowest = tail_means(latency, ok["outside"])
    trials = latency.groupby(ok["trial"]) if "trial" in ok else [(1, latency)]
    return Tail(steal=steal, steal_slowest=steal_slowest, core_speed=speed,
                core_speed_slowest=speed_slowest, outside=outside,
                outside_slowest=outside_slowest,
                p99_trials=tuple(percentiles(one, "latency")["latency_p99_s"]
                                 for _, one in trials if len(one)))


def steady_windows(workload: WorkloadSpec) -> list[tuple[float, Window]]:
    """Each steady stage's rate and its window after settling, on the records' clock."""
    if workload.stages is None or not all(isinstance(s, Steady) for s in workload.stages):
        raise UsageError(f"workload {workload.name} is not made of steady stages; calibrate on "
                         "`harness run --workload calibration_levels`")
    windows, start = [], workload.warmup_s
    for stage in workload.stages:
        assert isinstance(stage, Steady)
        if stage.qps <= 0:
            raise UsageError(f"workload {workload.name}: a calibration stage needs a rate above 0")
        if stage.duration_s <= SETTLE_S:
            raise UsageError(f"workload {workload.name}: a calibration stage must last more "
                             f"than {SETTLE_S:g} s (its settling), not {stage.duration_s:g}")
        windows.append((stage.qps, Window(start + SETTLE_S, stage.duration_s - SETTLE_S)))
        start += stage.duration_s
    return windows


def grew(records: pd.DataFrame, window: Window, slo_s: float) -> bool:
    """Whether the queue grew through the window: its second half's P50 over 1.5× its first's.
    Such a stage is past what the replicas serve, and its P99 depends on how long it ran."""
    half = window.length_s / 2
    p50 = [summarize(records, Window(start, half), slo_s, stream=False)["latency_p50_s"]
           for start in (window.start_s, window.start_s + half)]
    return p50[1] > GROWTH * p50[0]


def from_steady_stages(run: Path, stack: str) -> Measured:
    """Each stage a level, pooled over trials; the stages at the lowest rate pooled into the
    lowest level and the work. They also measure the machine's speed again and again: each
    one's is its mean service time ÷ that over all of them, and every other level's `speed` is
    the mean of the lowest stages' just before and after it. It is reported, not applied
    (docs/projection.md says why)."""
    workload = WorkloadSpec.model_validate(read_specs(run, [])[1])
    trials = read_trials(run, stack)
    if not trials:
        raise UsageError(f"--calibrate-from {run}: no records of stack {stack!r} there")
    records = pd.concat([trial_records(run, stack, trial) for trial in trials],
                        ignore_index=True)
    stages = steady_windows(workload)
    lowest = min(rate for rate, _ in stages)
    references = {k: in_window(records, window) for k, (rate, window) in enumerate(stages)
                  if rate == lowest}
    if any(not part["ok"].all() for part in references.values()):
        raise UsageError(f"--calibrate-from {run}: {stack} failed requests at {lowest:g} QPS, "
                         "the lowest level; it cannot be calibrated on this run")
    means = {k: summarize(records, stages[k][1], workload.slo_s, stream=False)["service_mean_s"]
             for k in references}
    overall = float(np.mean([means[k] for k in references]))
    speeds = {k: mean / overall for k, mean in means.items()}
    lowest_records = pd.concat(references.values())
    figures = percentiles(lowest_records["done_s"] - lowest_records["scheduled_s"], "latency")
    levels = [Level(lowest, figures["latency_p50_s"], figures["latency_p99_s"],
                    len(lowest_records), stages[min(references)][1].length_s, SETTLE_S,
                    **tail_of(lowest_records),
                    arrivals=tuple(arrivals_in(records, stages[k][1], SETTLE_S)
                                   for k in references))]
    for k, (rate, window) in enumerate(stages):
        if k in references or grew(records, window, workload.slo_s):
            continue
        near = [j for j in references if j < k][-1:] + [j for j in references if j > k][:1]
        level = level_of(records, window, rate, float(np.mean([speeds[j] for j in near])),
                         workload)
        levels.extend([level] if level is not None else [])
    if len(levels) < MIN_LEVELS:
        raise too_few(run, stack, len(levels), "steady stage(s) served whole")
    setup = stack_setup(run, stack)
    work = solo_service(lowest_records)
    return Measured(stack, setup.replicas, setup.policy,
                    sorted(levels, key=lambda level: level.rate_qps), work.service_s,
                    setup.front_servers, work.source)


def level_of(records: pd.DataFrame, window: Window, rate: float, speed: float,
             workload: WorkloadSpec) -> Level | None:
    """A stage as a level; none where a request failed: past what the replicas serve, it has
    no latency to match."""
    figures = summarize(records, window, workload.slo_s, stream=False)
    if not figures["requests"] or figures["ok_requests"] < figures["requests"]:
        return None
    return Level(rate, figures["latency_p50_s"], figures["latency_p99_s"], figures["requests"],
                 window.length_s, SETTLE_S, speed, **tail_of(in_window(records, window)),
                 arrivals=(arrivals_in(records, window, SETTLE_S),))
