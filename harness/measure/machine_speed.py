"""The machine's own speed, taken before and after every trial while no stack runs: three
fixed pieces of work, timed the same way each time.

On a shared 2-core machine a stack's capacity moved by up to 16 % from one start to the next.
That can be the stack (its start) or the machine (a neighbour's load, a slower host). The two
are told apart only by measuring the machine the same way each time, apart from the stacks.
Three yardsticks, because a shared host can slow each alone: a Python loop runs in a core's
own caches (the API servers, the scheduler and the balancer are Python, and they take most of
the CPU time on this engine); a 64 MiB copy goes through the shared cache and memory, which
neighbours share too (the engine's weights and KV cache live there); and a round trip between
two processes on two cores wakes a sleeping process twice, as every request does on its way
from the load generator through the balancer to a replica and back.

Each trial folder keeps `machine.json` (`MachineSpeed`); the scorecard lists the speeds per
trial next to its rows (`harness.report.scorecard_results.MachineCheck`). Between one trial
and the next the driver only rewrites the summary (and a scorecard drops an unpacked image),
so one trial's speeds after are the next one's before."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import Field, ValidationError

from harness.report.result_base import Result
from harness.report.scorecard_results import MachineCheck, Yardstick

MACHINE_FILE = "machine.json"  # in each trial's folder
LOOP_STEPS = 2_000_000  # about 90 ms per timing on this machine's cores
COPY_BYTES = 64 * 2**20  # past each core's own 2 MiB cache, into the shared cache and memory
TIMINGS = 5  # per core and yardstick; the median is kept, so an interrupted one does not count
# Each yardstick: what it is, in words, and its unit.
YARDSTICKS = {"python": ("a Python loop", "million loop steps per second per core"),
              "memory": (f"a {COPY_BYTES // 2**20} MiB copy", "GB/s per core"),
              "wakeup": ("a round trip between two cores", "µs (less is faster)")}
ROUND_TRIPS = 1_000  # per timing: about 70 ms where a wake-up across cores costs 35 µs
# The other end of the round trip: echoes each byte back.
ECHO = "import os\nwhile (byte := os.read(0, 1)):\n    os.write(1, byte)\n"


class MachineSpeed(Result):
    """A trial's `machine.json`: each yardstick's speed on each core before the stack started
    and after it stopped."""

    before: dict[str, dict[str, float]] = Field(description="yardstick (`YARDSTICKS`) → core → "
                                                "speed, before the stack started")
    after: dict[str, dict[str, float]] | None = Field(default=None, description="the same, "
                                                      "after it stopped (null: the trial did "
                                                      "not end)")

    def mean(self, yardstick: str) -> float | None:
        """The trial's speed: the mean over cores and over the two measurements."""
        taken = [*self.before.get(yardstick, {}).values(),
                 *(self.after or {}).get(yardstick, {}).values()]
        return statistics.fmean(taken) if taken else None

    def drift(self, yardstick: str) -> float | None:
        """After ÷ before, over the cores' mean: how much the machine moved during the trial."""
        before = self.before.get(yardstick)
        after = (self.after or {}).get(yardstick)
        if not before or not after:
            return None
        return statistics.fmean(after.values()) / statistics.fmean(before.values())


def _steps_per_second(steps: int) -> float:
    start = time.perf_counter()
    total = 0
    for step in range(steps):
        total += step * step
    return steps / (time.perf_counter() - start)


def _copy_bandwidth(source: np.ndarray, target: np.ndarray) -> float:
    start = time.perf_counter()
    np.copyto(target, source)
    return 2 * source.nbytes / (time.perf_counter() - start)  # read + written


def _round_trip_us(here: int, there: int, round_trips: int, timings: int) -> float:
    """The median time of one byte sent to a process on core `there` and echoed back to this
    one on core `here`: two wake-ups of a sleeping process on another core. On a virtual
    machine each costs an interrupt through the host, whose load it shows; a busy loop never
    sleeps, so it cannot."""
    echo = subprocess.Popen([sys.executable, "-c", ECHO], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    stdin, stdout = echo.stdin, echo.stdout
    if stdin is None or stdout is None:  # never with PIPE; said for the type checker
        raise OSError("the echo process has no pipes")
    send, receive = stdin.fileno(), stdout.fileno()
    try:
        os.sched_setaffinity(echo.pid, {there})
        os.sched_setaffinity(0, {here})

        def timed(count: int) -> float:
            start = time.perf_counter()
            for _ in range(count):
                os.write(send, b"x")
                os.read(receive, 1)
            return (time.perf_counter() - start) / count * 1e6

        timed(round_trips // 5)  # the echo's own start and first wake-ups
        return statistics.median(timed(round_trips) for _ in range(timings))
    finally:
        stdin.close()  # the echo ends on end of input
        echo.wait(timeout=10)
        stdout.close()


def core_speeds(steps: int = LOOP_STEPS, copy_bytes: int = COPY_BYTES,
                round_trips: int = ROUND_TRIPS,
                timings: int = TIMINGS) -> dict[str, dict[str, float]]:
    """Each yardstick on each core this process may run on, the median of `timings`: a
    Python loop in million steps per second, a memory copy in GB/s, and (between the first
    two cores, where there are two) a round trip in µs. The process's own affinity is
    restored after."""
    allowed = os.sched_getaffinity(0)
    source = np.ones(copy_bytes // 8)
    target = np.empty_like(source)
    speeds: dict[str, dict[str, float]] = {"python": {}, "memory": {}}
    try:
        for core in sorted(allowed):
            os.sched_setaffinity(0, {core})
            _steps_per_second(steps // 10)  # the first timing after a move runs cold
            _copy_bandwidth(source, target)
            speeds["python"][str(core)] = statistics.median(
                _steps_per_second(steps) for _ in range(timings)) / 1e6
            speeds["memory"][str(core)] = statistics.median(
                _copy_bandwidth(source, target) for _ in range(timings)) / 1e9
        if len(allowed) > 1:
            here, there = sorted(allowed)[:2]
            speeds["wakeup"] = {f"{here}-{there}": _round_trip_us(here, there, round_trips,
                                                                  timings)}
    finally:
        os.sched_setaffinity(0, allowed)
    return speeds


def _speeds_or_none() -> dict[str, dict[str, float]] | None:
    """The yardsticks, or None where this machine will not run them (a container that refuses
    affinity, no process to spare): the check describes a run, it never stops one."""
    try:
        return core_speeds()
    except (OSError, subprocess.SubprocessError):
        return None


@contextmanager
def machine_speed_around(trial_dir: Path, before: dict[str, dict[str, float]] | None = None
                         ) -> Iterator[MachineSpeed | None]:
    """Measure the machine before the trial's stack starts and after it stops (also when the
    trial fails: the speed then is as telling). `before`: the speeds the trial before took
    after its stack stopped, with no load run since: the same moment, so it is taken once
    (2.5 s on 2 cores). Yields what it took, `after` filled in once the block ends; None where
    the machine refuses the yardsticks."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    before = before if before is not None else _speeds_or_none()
    taken = None if before is None else MachineSpeed(before=before)
    if taken is not None:
        taken.write(trial_dir / MACHINE_FILE)
    try:
        yield taken
    finally:
        if taken is not None and (after := _speeds_or_none()) is not None:
            taken.after = after
            taken.write(trial_dir / MACHINE_FILE)


def read_machine_speed(trial_dir: Path) -> MachineSpeed | None:
    """A trial's measurement; None where it has none (a run from before it was taken) or the
    file is unreadable."""
    path = trial_dir / MACHINE_FILE
    try:
        return MachineSpeed.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return None


def _yardstick(name: str, taken: dict[str, list[MachineSpeed | None]]) -> Yardstick | None:
    speeds = {stack: [None if speed is None else speed.mean(name) for speed in trials]
              for stack, trials in taken.items()}
    known = [speed for trial_speeds in speeds.values() for speed in trial_speeds
             if speed is not None]
    drifts = [abs(1 - drift) for trials in taken.values() for speed in trials
              if speed is not None and (drift := speed.drift(name)) is not None]
    if not known:
        return None
    what, unit = YARDSTICKS[name]
    return Yardstick(what=what, unit=unit, speeds=speeds, spread=max(known) / min(known),
                     largest_drift=max(drifts, default=None))


def machine_check(folder: Path, stacks: list[str],
                  capacities: dict[str, list[float | None]]) -> MachineCheck | None:
    """Each stack's trials' speeds in a run folder, per yardstick, with their spread, beside
    each stack's capacity spread (`capacities`: each trial's capacity); None where no trial
    was measured."""
    taken: dict[str, list[MachineSpeed | None]] = {}
    for stack in stacks:
        trials = sorted((folder / stack).glob("trial-*"),
                        key=lambda path: int(path.name.removeprefix("trial-")))
        taken[stack] = [read_machine_speed(trial) for trial in trials]
    yardsticks = {name: measured for name in YARDSTICKS
                  if (measured := _yardstick(name, taken)) is not None}
    if not yardsticks:
        return None
    return MachineCheck(
        yardsticks=yardsticks,
        capacity_spread={stack: max(found) / min(found) for stack, trial_capacities
                         in capacities.items()
                         if len(found := [qps for qps in trial_capacities if qps]) > 1})
