"""`harness scorecard`: one side-by-side of every dimension measured, each row with its interval
and its verdict, for the price of one stack start per stack and trial.

A stack's start costs 36–47 s on 2 cores, more than most of what is measured on it, so every
trial of a stack serves its phases on one start, in this order, and the start itself is
timed (`start.json`; in the first `cold_trials` trials the start is cold, and those make the
cold-start row, `harness.measure.start_row`):

1. **P99 at a fixed load** (`load/`): the workload replayed at `load_qps`, its window after a
   warm-up that covers the first slow requests of a fresh engine (64 QPS, about half of either
   stack's capacity on the embedded default, × 15 s × 4 trials ≈ 3,840 requests: a P99's
   distribution-free interval has an upper bound from 368 on);
2. **capacity at the SLO**: one capacity search (`harness.experiments.capacity`), probes as
   `harness capacity` runs them;
3. **success under a replica kill** (`kill/`, in the first `kill_trials` trials): the kill
   scenario's faults played during a replay at `kill_qps`. It comes last: it damages the stack;
4. **a spike** (`spike/`, in the last `spike_trials` trials instead): the spike scenario's
   stages, each stack as its spec deploys it: one with an `autoscaling:` section is first
   brought down to its floor and scaled by its own policy during the replay (its log in
   `spike/logs/scaling.jsonl`), any other stays at its `replicas`
   (`harness.measure.spike_row`). It comes last too: it changes the fleet, so it never shares
   a trial with the kill.

Trials are interleaved (A B A B) as in every experiment. The folder is a capacity run's (its
`summary.json` is the capacity summary, so `harness log` and the dashboard read it as one) plus:

    <stack>/trial-<k>/start.json the start: image phase, slowest replica to /health
    <stack>/trial-<k>/load/      records.jsonl, records.parquet, logs/
    <stack>/trial-<k>/kill/      the same, and faults.jsonl
    <stack>/trial-<k>/spike/     the same, and scaling.parquet (the autoscaler's log on the
                                 records' clock)
    schedules/load.jsonl, schedules/kill.jsonl, schedules/spike.jsonl
    scorecard.json               the rows (`harness.measure.scorecard`), rewritten after every
                                 trial, so a scorecard cut short keeps what it measured
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import Field

from harness.errors import UsageError
from harness.experiments.capacity.experiment import (
    CapacityConfig,
    CapacityObserver,
    CapacityRun,
)
from harness.experiments.faults import FaultPlayer
from harness.experiments.run import measured_window
from harness.experiments.scorecard_summary import SCORECARD_FILE, scorecard_from_folder
from harness.experiments.target import Spec, Target
from harness.experiments.trial import RAW_RECORDS, WrittenSchedule
from harness.measure.drain import wait_idle
from harness.measure.metrics import summarize
from harness.measure.records import write_parquet
from harness.measure.reliability import FAULTS_FILE, LOGS
from harness.measure.scaling import peak_periods, read_replay_scaling, scaling_frame
from harness.measure.spike_row import SPIKE_SCALING
from harness.measure.start_row import START_FILE, record_start
from harness.report.results import StackFigures
from harness.workload.scenario import FaultPlan, ScenarioSpec, load_scenario
from harness.workload.schedule import build_schedule
from harness.workload.spec import WorkloadSpec
from stacks.autoscaler.actuator import Autoscaler
from stacks.autoscaler.config import AutoscalingSpec
from stacks.images.node import forget_unpacked, forgotten_cleared
from stacks.launcher import SCALING_EVENTS
from stacks.spec import EndpointSpec, StackSpec, load_stack_spec


class ScorecardConfig(CapacityConfig):
    """The capacity search's options (a short search by default: the scorecard is the demo),
    and the two phases' own.

    Four trials, not three: the capacity ratio's t interval over K paired trials is
    ± t(K-1) × spread ÷ √K, 2.48 × the spread at K = 3 and 1.59 × at K = 4, so a fourth start
    of each stack narrows it by 36 % at the same spread. Its time comes from shorter probes
    (8 s) and fixed-load windows (15 s, the same 3,840 requests over 4 trials), one kill
    trial instead of two, and starts 8 s shorter (`stacks.launcher.ENGINE_ENV_DEFAULTS`)."""

    trials: int = Field(default=4, ge=1, le=100)
    duration_s: float = Field(default=8.0, gt=0, description="measured seconds per probe")
    warmup_s: float | None = Field(default=2.0, ge=0, description="per probe")
    start_qps: float = Field(default=64.0, gt=0, description="the run's first search "
                             "starts here: the fixed load, which each trial has just served")
    tolerance: float = Field(default=0.05, gt=0, lt=1)
    load_qps: float = Field(default=64.0, gt=0, description="the fixed load P99 is taken at")
    load_duration_s: float = Field(default=15.0, gt=0, description="its measured seconds")
    phase_warmup_s: float = Field(default=5.0, ge=0, description="before each phase's window")
    kill_qps: float = Field(default=2.0, gt=0, description="the load a replica is killed at")
    kill_duration_s: float = Field(default=30.0, gt=0, description="its measured seconds")
    kill_trials: int = Field(default=1, ge=0, description="the kill phase runs in the first "
                                                          "this many trials")
    kill_scenario: str = Field(default="replica_kill", description="a name under "
                               "workloads/scenarios/ or a YAML path")
    cold_trials: int = Field(default=2, ge=0, description="each stack starts cold (nothing "
                             "of its image on this machine) in the first this many trials")
    spike_trials: int = Field(default=1, ge=0, description="the spike phase runs in the last "
                                                           "this many trials")
    spike_scenario: str = Field(default="spike_short", description="its load shape: a name "
                                "under workloads/scenarios/ or a YAML path, with stages and "
                                "autoscale: true")


class ScorecardObserver(CapacityObserver, Protocol):
    def phase_started(self, stack: str, trial: int, phase: str, requests: int) -> None: ...

    def phase_done(self, stack: str, trial: int, phase: str, figures: StackFigures) -> None: ...


class Phase:
    """One of the two replays a trial serves besides its search: its schedule and window."""

    def __init__(self, name: str, workload: WorkloadSpec, schedule: WrittenSchedule,
                 faults: FaultPlan | None = None) -> None:
        self.name = name
        self.workload = workload
        self.schedule = schedule
        self.faults = faults
        self.window = measured_window(workload)


class ScorecardRun(CapacityRun):
    kind = "scorecard"

    def __init__(self, config: ScorecardConfig, observer: ScorecardObserver) -> None:
        # Everything refused before any folder is made.
        self.scenario = load_scenario(config.kill_scenario)
        self.spike = spike_scenario(config)
        specs = [load_stack_spec(name) for name in config.stacks]
        for spec in specs if config.kill_trials else []:
            if isinstance(spec, EndpointSpec):
                raise UsageError(f"the scorecard kills a replica of every stack; {spec.name} "
                                 "is an endpoint running elsewhere: compare stacks this "
                                 "machine launches, or --kill-trials 0")
        # The experiment fixes every fleet at `replicas`; the spike phase scales with what
        # each spec's `autoscaling:` says.
        self.spike_scaling = spike_scaling(specs) if config.spike_trials else {}
        self.scorecard_config = config
        self.phase_observer = observer
        super().__init__(config, observer)
        load = self.steady_workload(config.load_qps, config.load_duration_s,
                                    config.phase_warmup_s)
        kill = self.scenario.shape(self.steady_workload(config.kill_qps,
                                                        config.kill_duration_s,
                                                        config.phase_warmup_s))
        self.phases = {"load": self.phase("load", load),
                       "kill": self.phase("kill", kill, self.scenario.plan(kill)),
                       "spike": self.phase("spike", self.spike_workload())}

    def write_inputs(self, workload_note: str = "", **run_fields: object) -> None:
        """run.json also keeps the scenarios' own names (the options may be paths), and what
        the spike's rows are computed with: its window, its peaks and each stack's fleet."""
        spike = self.spike_workload()
        window = measured_window(spike)
        super().write_inputs(
            workload_note, kill_scenario_name=self.scenario.name,
            spike_scenario_name=self.spike.name,
            spike_window_s=[window.start_s, window.length_s],
            spike_peaks_s=peak_periods(spike.segments()),
            spike_fleets={spec.name: spike_fleet(spec, self.spike_scaling.get(spec.name))
                          for spec in self.stacks},
            **run_fields)

    def spike_workload(self) -> WorkloadSpec:
        """The spike phase's workload: the scenario's stages (rate and length are theirs)."""
        return self.spike.shape(self.steady_workload(1.0, 1.0,
                                                     self.scorecard_config.phase_warmup_s))

    def phase(self, name: str, workload: WorkloadSpec, faults: FaultPlan | None = None) -> Phase:
        built = build_schedule(workload, self.tokenizer)
        written = WrittenSchedule.write(built, self.out / "schedules" / f"{name}.jsonl")
        return Phase(name, workload, written, faults)

    def before_start(self, spec: Spec, trial: int) -> None:
        if isinstance(spec, StackSpec) and trial <= self.scorecard_config.cold_trials:
            forget_unpacked(spec.name)

    def measure(self, spec: Spec, trial: int, target: Target, trial_dir: Path) -> None:
        if target.stack is not None:
            record_start(target.stack, trial <= self.scorecard_config.cold_trials,
                         trial_dir / START_FILE)
        self.replay_phase(self.phases["load"], spec, trial, target, trial_dir)
        super().measure(spec, trial, target, trial_dir)
        if trial <= self.scorecard_config.kill_trials:
            self.replay_phase(self.phases["kill"], spec, trial, target, trial_dir)
        if trial > self.scorecard_config.trials - self.scorecard_config.spike_trials:
            self.replay_phase(self.phases["spike"], spec, trial, target, trial_dir)

    def replay_phase(self, phase: Phase, spec: Spec, trial: int, target: Target,
                     trial_dir: Path) -> None:
        where = trial_dir / phase.name
        where.mkdir(parents=True, exist_ok=True)
        # What the search's last probe left running would otherwise land in this window.
        wait_idle(target.endpoint, target.headers())
        scaling = self.spike_scaling.get(spec.name) if phase.name == "spike" else None
        scaler = None
        if scaling is not None and target.stack is not None:
            scaler = Autoscaler(target.stack, where / LOGS / SCALING_EVENTS, scaling)
            scaler.settle(scaling.min_replicas)  # the fleet a calm before the spike leaves
            scaler.start()
        self.phase_observer.phase_started(spec.name, trial, phase.name,
                                          len(phase.schedule.offsets_s))
        try:
            if phase.faults is not None and target.stack is not None:
                with FaultPlayer(phase.faults, target.stack.replicas, where / RAW_RECORDS,
                                 where / FAULTS_FILE, target.name):
                    frame, _ = self.replay(target, phase.schedule, where, trial)
            else:
                frame, _ = self.replay(target, phase.schedule, where, trial)
        finally:
            if scaler is not None:
                scaler.close()
        write_parquet(frame, where / "records.parquet")
        if phase.name == "spike":
            write_parquet(scaling_frame(read_replay_scaling(
                where / RAW_RECORDS, where / LOGS / SCALING_EVENTS, trial)), where / SPIKE_SCALING)
        self.phase_observer.phase_done(spec.name, trial, phase.name, StackFigures.model_validate(
            summarize(frame, phase.window, self.config.slo_p99_s, phase.workload.stream)))

    def run(self) -> Path:
        with forgotten_cleared():
            super().run()
        return self.out / SCORECARD_FILE

    def write_summary(self) -> None:
        """The capacity summary (summary.json), then the scorecard beside it, read from what
        the trials wrote to disk (as `harness log` reads a saved scorecard)."""
        summary = self.summary()
        summary.write(self.summary_path)
        scorecard_from_folder(self.out, summary).write(self.out / SCORECARD_FILE)


def spike_scenario(config: ScorecardConfig) -> ScenarioSpec:
    """The spike phase's scenario, refused where it could not be played as one."""
    spike = load_scenario(config.spike_scenario)
    if config.spike_trials and (spike.stages is None or not spike.autoscale or spike.faults):
        raise UsageError(f"--spike-scenario {config.spike_scenario}: the spike phase plays a "
                         "load shape the autoscalers act on; give a scenario with stages, "
                         "autoscale: true and no faults, e.g. spike_short")
    if config.kill_trials + config.spike_trials > config.trials:
        raise UsageError(f"--kill-trials {config.kill_trials} and --spike-trials "
                         f"{config.spike_trials} need --trials ≥ "
                         f"{config.kill_trials + config.spike_trials}: each phase changes the "
                         "fleet, so they never share a trial")
    return spike


def spike_scaling(specs: list[StackSpec | EndpointSpec]) -> dict[str, AutoscalingSpec]:
    """Each stack's autoscaling in the spike phase, where it scales. The phase scales within
    the slots the fleet was started with (`replicas`), each with its own cores."""
    scaling = {}
    for spec in specs:
        if isinstance(spec, StackSpec) and spec.autoscaling is not None \
                and spec.autoscaling.scales:
            if spec.autoscaling.max_replicas > spec.replicas:
                raise UsageError(f"stack {spec.name}: the scorecard's spike phase scales "
                                 f"within the {spec.replicas} replicas it starts; set "
                                 f"autoscaling.max_replicas ≤ replicas, or --spike-trials 0")
            scaling[spec.name] = spec.autoscaling
    return scaling


def spike_fleet(spec: Spec, scaling: AutoscalingSpec | None) -> dict[str, object]:
    """What run.json keeps of a stack's fleet in the spike phase."""
    if scaling is not None:
        return {"policy": scaling.policy, "min_replicas": scaling.min_replicas,
                "max_replicas": scaling.max_replicas, "replicas": scaling.min_replicas}
    replicas = spec.replicas if isinstance(spec, StackSpec) else None
    return {"policy": "static", "min_replicas": replicas, "max_replicas": replicas,
            "replicas": replicas}


def run_scorecard(config: ScorecardConfig, observer: ScorecardObserver) -> Path:
    return ScorecardRun(config, observer).run()
