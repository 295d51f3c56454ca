"""Scenarios: what happens during a trial besides the traffic, the YAML files under
`workloads/scenarios/`, validated with pydantic and replayed identically for every stack:
faults, a load shape (`stages`, the workload's stage kinds, in place of its rate) and whether
the stacks' autoscalers act (`autoscale: true`; otherwise every fleet stays at `replicas`).

    name: replica_kill
    faults:
      - {kind: kill_replica, at_s: 15, replica: 0, every_s: 60}

    name: double_spike
    autoscale: true
    stages:
      - {kind: steady, qps: 1, duration_s: 30}
      - {kind: steady, qps: 3, duration_s: 90}
      ...

Fault kinds (`at_s`: seconds into the measured window; `replica`: its index in the stack):

- `kill_replica`: SIGKILL the replica's whole process tree; again every `every_s` if given;
- `hang_replica`: SIGSTOP its tree for `for_s` seconds, then SIGCONT;
- `slow_replica`: for `for_s` seconds, a SIGSTOP/SIGCONT duty cycle of `period_s` that lets it
  run 1/`factor` of each period: a replica `factor` times slower;
- `overload`: the offered rate is `factor` × for `for_s` seconds (a spike in the schedule).

A plan (`FaultPlan`) turns a scenario into timed signals on the replay's clock (seconds from
the anchor, the warm-up included) and the occurrences a report marks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.workload.spec import Stage, WorkloadSpec
from stacks.errors import SpecError
from stacks.spec import PROJECT_ROOT, describe_validation_error, read_yaml_mapping

SCENARIOS_DIR = PROJECT_ROOT / "workloads" / "scenarios"


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at_s: float = Field(ge=0, description="seconds into the measured window")


class KillReplica(_Fault):
    kind: Literal["kill_replica"]
    replica: int = Field(default=0, ge=0, description="the replica's index in the stack")
    every_s: float | None = Field(default=None, gt=0, description="again every this often")


class HangReplica(_Fault):
    kind: Literal["hang_replica"]
    replica: int = Field(default=0, ge=0)
    for_s: float = Field(gt=0)


class SlowReplica(_Fault):
    kind: Literal["slow_replica"]
    replica: int = Field(default=0, ge=0)
    for_s: float = Field(gt=0)
    factor: float = Field(gt=1, le=100, description="times slower")
    period_s: float = Field(default=0.5, ge=0.05, le=10, description="of the duty cycle")


class Overload(_Fault):
    kind: Literal["overload"]
    for_s: float = Field(gt=0)
    factor: float = Field(gt=1, le=100, description="times the workload's rate")


Fault = Annotated[KillReplica | HangReplica | SlowReplica | Overload,
                  Field(discriminator="kind")]


@dataclass(frozen=True, slots=True)
class Signal:
    """One signal to a replica's process tree, `offset_s` after the anchor."""

    offset_s: float
    replica: int
    signal: Literal["SIGKILL", "SIGSTOP", "SIGCONT"]


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One fault as a report marks it: from `start_s` to `end_s` after the anchor."""

    fault: int  # its index in the scenario
    kind: str
    replica: int | None  # None: not a replica's fault (overload)
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class FaultPlan:
    signals: list[Signal]
    occurrences: list[Occurrence]

    def replicas_needed(self) -> int:
        return 1 + max((o.replica for o in self.occurrences if o.replica is not None),
                       default=-1)


class ScenarioSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    faults: list[Fault] = Field(default_factory=list)
    stages: list[Stage] | None = Field(default=None, min_length=1, description="a load shape "
                                       "in place of the workload's rate")
    autoscale: bool = Field(default=False, description="the stacks' autoscalers act during "
                            "the trial (otherwise every fleet is fixed at its `replicas`)")

    @model_validator(mode="after")
    def _does_something(self) -> ScenarioSpec:
        if not self.faults and self.stages is None and not self.autoscale:
            raise ValueError("a scenario needs faults, stages or autoscale: true")
        if self.stages is not None and any(isinstance(f, Overload) for f in self.faults):
            raise ValueError("an overload shapes the load: put it in the stages instead")
        return self

    def plan(self, workload: WorkloadSpec) -> FaultPlan:
        """Signals and occurrences on the replay's clock; every fault starts inside the
        measured window (a fault's effects may run past its end)."""
        start, end = workload.warmup_s, workload.warmup_s + workload.measured_s
        signals: list[Signal] = []
        occurrences: list[Occurrence] = []
        for index, fault in enumerate(self.faults):
            if fault.at_s >= workload.measured_s:
                raise SpecError(f"scenario {self.name}: fault {index + 1} ({fault.kind}) at_s "
                                f"{fault.at_s:g} is past the measured window of "
                                f"{workload.measured_s:g} s (workload {workload.name})")
            at = start + fault.at_s
            if isinstance(fault, KillReplica):
                repeats = 1 if fault.every_s is None else \
                    math.ceil((end - at) / fault.every_s)
                for k in range(repeats):
                    t = at + k * fault.every_s if fault.every_s else at
                    signals.append(Signal(t, fault.replica, "SIGKILL"))
                    occurrences.append(Occurrence(index, fault.kind, fault.replica, t, t))
            elif isinstance(fault, HangReplica):
                signals += [Signal(at, fault.replica, "SIGSTOP"),
                            Signal(at + fault.for_s, fault.replica, "SIGCONT")]
                occurrences.append(Occurrence(index, fault.kind, fault.replica, at,
                                              at + fault.for_s))
            elif isinstance(fault, SlowReplica):
                signals += duty_cycle(fault, at)
                occurrences.append(Occurrence(index, fault.kind, fault.replica, at,
                                              at + fault.for_s))
            else:
                occurrences.append(Occurrence(index, fault.kind, None, at, at + fault.for_s))
        return FaultPlan(sorted(signals, key=lambda s: s.offset_s),
                         sorted(occurrences, key=lambda o: o.start_s))

    def shape(self, workload: WorkloadSpec) -> WorkloadSpec:
        """The workload with the scenario's stages in place of its rate, or its overload as a
        spike of its steady rate."""
        if self.stages is not None:
            return WorkloadSpec.model_validate({
                **workload.model_dump(), "rate_qps": None, "duration_s": None,
                "stages": [stage.model_dump() for stage in self.stages]})
        overloads = [fault for fault in self.faults if isinstance(fault, Overload)]
        if not overloads:
            return workload
        if len(overloads) > 1 or workload.rate_qps is None or workload.duration_s is None:
            raise SpecError(f"scenario {self.name}: an overload applies once, to a steady "
                            f"workload (rate_qps); workload {workload.name} is shaped by stages "
                            "or the scenario has several: put the spike in the stages instead")
        fault = overloads[0]
        spike = {"kind": "spike", "base_qps": workload.rate_qps,
                 "peak_qps": workload.rate_qps * fault.factor, "at_s": fault.at_s,
                 "spike_s": min(fault.for_s, workload.duration_s - fault.at_s),
                 "duration_s": workload.duration_s}
        return WorkloadSpec.model_validate({**workload.model_dump(), "rate_qps": None,
                                            "duration_s": None, "stages": [spike]})


def duty_cycle(fault: SlowReplica, at: float) -> list[Signal]:
    """Stopped for (1 - 1/factor) of each period, running for the rest, for `for_s`."""
    signals = []
    running_s = fault.period_s / fault.factor
    periods = max(1, round(fault.for_s / fault.period_s))
    for k in range(periods):
        begin = at + k * fault.period_s
        signals += [Signal(begin, fault.replica, "SIGSTOP"),
                    Signal(begin + fault.period_s - running_s, fault.replica, "SIGCONT")]
    return signals


def load_scenario(scenario: str) -> ScenarioSpec:
    """A scenario is a name under `workloads/scenarios/` or a path to a YAML file."""
    path = Path(scenario).expanduser()
    if path.suffix not in (".yaml", ".yml"):
        path = SCENARIOS_DIR / f"{scenario}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml"))
            raise SpecError(f"unknown scenario {scenario!r}; known: {', '.join(known)}, or a "
                            "path to a .yaml file")
    elif not path.is_file():
        raise SpecError(f"{path}: no such scenario file")
    raw = read_yaml_mapping(path, "scenario")
    try:
        return ScenarioSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path}: {describe_validation_error(exc, ScenarioSpec)}") from exc
