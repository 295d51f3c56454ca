"""The machine's own speed, taken before and after every trial: a fixed pure-Python loop timed
on each core while no stack runs.

On a shared 2-core machine a stack's capacity moved by up to 16 % from one start to the next.
That can be the stack (its start) or the machine (a neighbour's load, a slower host). The two
are told apart only by measuring the machine the same way each time, apart from the stacks.
A Python loop is the right yardstick here: on the CPU engine serving a small model, the API
servers, the scheduler and the balancer are Python, and they take most of the CPU time.

Each trial folder keeps `machine.json` (`MachineSpeed`); the scorecard lists the speeds per
trial next to its rows (`harness.report.scorecard_results.MachineCheck`)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import Field, ValidationError

from harness.report.result_base import Result
from harness.report.scorecard_results import MachineCheck

MACHINE_FILE = "machine.json"  # in each trial's folder
LOOP_STEPS = 2_000_000  # about 90 ms per timing on this machine's cores
TIMINGS = 5  # per core; the median is kept, so one interrupted timing does not count
UNIT = "million loop steps per second"


class MachineSpeed(Result):
    """A trial's `machine.json`: each core's speed before the stack started and after it
    stopped."""

    before: dict[str, float] = Field(description=f"per core, in {UNIT}, before the stack "
                                     "started")
    after: dict[str, float] | None = Field(default=None, description="per core, after it "
                                           "stopped (null: the trial did not end)")

    @property
    def mean(self) -> float:
        """The trial's speed: the mean over cores and over the two measurements."""
        taken = [*self.before.values(), *(self.after or {}).values()]
        return statistics.fmean(taken)

    @property
    def drift(self) -> float | None:
        """After ÷ before, over the cores' mean: how much the machine moved during the trial."""
        if not self.after:
            return None
        return statistics.fmean(self.after.values()) / statistics.fmean(self.before.values())


def _steps_per_second(steps: int) -> float:
    start = time.perf_counter()
    total = 0
    for step in range(steps):
        total += step * step
    return steps / (time.perf_counter() - start)


def core_speeds(steps: int = LOOP_STEPS, timings: int = TIMINGS) -> dict[str, float]:
    """Each core this process may run on: the median of `timings` timed loops, in million
    steps per second. The process's own affinity is restored after."""
    allowed = os.sched_getaffinity(0)
    speeds: dict[str, float] = {}
    try:
        for core in sorted(allowed):
            os.sched_setaffinity(0, {core})
            _steps_per_second(steps // 10)  # the first timing after a move runs cold
            speeds[str(core)] = statistics.median(
                _steps_per_second(steps) for _ in range(timings)) / 1e6
    finally:
        os.sched_setaffinity(0, allowed)
    return speeds


@contextmanager
def machine_speed_around(trial_dir: Path) -> Iterator[None]:
    """Measure the machine before the trial's stack starts and after it stops (also when the
    trial fails: the speed then is as telling)."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    taken = MachineSpeed(before=core_speeds())
    taken.write(trial_dir / MACHINE_FILE)
    try:
        yield
    finally:
        taken.after = core_speeds()
        taken.write(trial_dir / MACHINE_FILE)


def read_machine_speed(trial_dir: Path) -> MachineSpeed | None:
    """A trial's measurement; None where it has none (a run from before it was taken) or the
    file is unreadable."""
    path = trial_dir / MACHINE_FILE
    try:
        return MachineSpeed.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return None


def machine_check(folder: Path, stacks: list[str],
                  capacities: dict[str, list[float | None]]) -> MachineCheck | None:
    """Each stack's trials' speeds in a run folder, with their spread, beside each stack's
    capacity spread (`capacities`: each trial's capacity); None where no trial was measured."""
    speeds: dict[str, list[float | None]] = {}
    drifts: list[float] = []
    for stack in stacks:
        trials = sorted((stack_dir := folder / stack).glob("trial-*"),
                        key=lambda path: int(path.name.removeprefix("trial-")))
        taken = [read_machine_speed(stack_dir / trial.name) for trial in trials]
        speeds[stack] = [None if speed is None else speed.mean for speed in taken]
        drifts += [abs(1 - drift) for speed in taken
                   if speed is not None and (drift := speed.drift) is not None]
    known = [speed for trial_speeds in speeds.values() for speed in trial_speeds
             if speed is not None]
    if not known:
        return None
    return MachineCheck(
        unit=UNIT, speeds=speeds, spread=max(known) / min(known),
        largest_drift=max(drifts, default=None),
        capacity_spread={stack: max(found) / min(found) for stack, trial_capacities
                         in capacities.items()
                         if len(found := [qps for qps in trial_capacities if qps]) > 1})
