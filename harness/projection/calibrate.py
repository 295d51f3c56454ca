"""Calibrating the simulation on measured load levels (`harness.projection.measured`: a
capacity search's probes, or the steady stages of `workloads/calibration_levels.yaml`).

Each level is an offered rate with its measured P50 and P99; the work of a request alone on a
replica comes from the lowest level. Three parameters are then fitted on a grid: the API
servers' time per request (`ReplicaModel.front_s`, 0 included), the engine's cost of
sharing at all (`ReplicaModel.jump`, 0 included) and its batching cost per request
(`ReplicaModel.slowdown`). The set chosen is the one whose simulation of the measured
setup (its replicas, its API servers, its balancer policy, each level's measured arrivals)
strays least from the measured P50 and P99, the worst level counted. The fit is only
trusted, and a projection only made, when that worst error is within the bound (15 %) at 3
levels or more.

The arrivals are the schedule's own, not fresh Poisson draws at the level's rate: a level's
window holds a few hundred requests, so its P99 is set by a handful of them, and a burst in
the schedule (every trial replays the same one) raises it in every trial alike.

The same search also says how well the model predicts a level it was not fitted on: for
each level, the set fitted on the others, and its error there (leave one level out). That
is reported beside the fit, not used to choose it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from harness.projection.fleet_sim import SteadyRun, simulate_steady
from harness.projection.measured import MIN_LEVELS, Level, Measured
from harness.projection.replica_model import ReplicaModel

MAX_ERROR = 0.15
SLOWDOWNS = np.geomspace(1e-3, 1.0, 21)  # the batching cost's grid
FRONTS_S = np.concatenate([[0.0], np.geomspace(0.004, 0.064, 9)])  # the API servers' grid
JUMPS = np.array([0.0, 0.25, 0.5, 0.75])  # the sharing cost's grid
REPEATS = 6  # simulated probes per level, pooled: one probe's window is short and noisy
SEARCH_REPEATS = 1  # the same, while searching the grid
FINALISTS = 6  # sets kept from the search, for all levels and for each left out


@dataclass(frozen=True)
class LevelFit:
    level: Level
    sim_p50_s: float
    sim_p99_s: float

    @property
    def p50_error(self) -> float:
        return abs(self.sim_p50_s - self.level.p50_s) / self.level.p50_s

    @property
    def p99_error(self) -> float:
        return abs(self.sim_p99_s - self.level.p99_s) / self.level.p99_s

    @property
    def error(self) -> float:
        return max(self.p50_error, self.p99_error)


@dataclass(frozen=True)
class Calibration:
    stack: str
    replicas: int
    policy: str
    model: ReplicaModel
    fits: list[LevelFit]
    held_out: list[LevelFit]  # each level simulated by the set fitted without it

    @property
    def max_error(self) -> float:
        return max(f.error for f in self.fits)

    @property
    def held_out_error(self) -> float:
        return max(f.error for f in self.held_out)

    @property
    def trusted(self) -> bool:
        return len(self.fits) >= MIN_LEVELS and self.max_error <= MAX_ERROR


def simulate_levels(model: ReplicaModel, measured: Measured, seed: int,
                    repeats: int | None = None) -> list[LevelFit]:
    """Each level as it was measured: its stretches' arrivals replayed (Poisson at its rate
    where it has none), each window after its warm-up, `repeats` times, pooled (an
    overloaded probe's P99 depends on how long it ran)."""
    fits = []
    for level in measured.levels:
        stretches: list[tuple[float, float, tuple[float, ...] | None]] = (
            [(s.duration_s, s.warmup_s, s.times_s) for s in level.arrivals]
            or [(level.duration_s, level.warmup_s, None)])
        runs = [simulate_steady(model, measured.replicas, measured.policy, level.rate_qps,
                                duration_s, seed + k, warmup_s, arrivals_s=times_s)
                for k in range(repeats or REPEATS)
                for duration_s, warmup_s, times_s in stretches]
        pooled = SteadyRun(np.concatenate([run.latencies_s for run in runs]), level.rate_qps,
                           measured.replicas, measured.policy)
        fits.append(LevelFit(level, pooled.percentile(50), pooled.percentile(99)))
    return fits


def model_for(measured: Measured, front_s: float, jump: float, slowdown: float
              ) -> ReplicaModel:
    return ReplicaModel(measured.solo_work(front_s), slowdown, jump=jump, front_s=front_s,
                        front_servers=measured.front_servers)


def worst(fits: list[LevelFit], without: int | None = None) -> float:
    return max((f.error for i, f in enumerate(fits) if i != without), default=0.0)


def calibrate(measured: Measured, seed: int = 0) -> Calibration:
    """The (front_s, jump, slowdown) set whose simulation strays least from the measured
    levels (worst level, P50 or P99), and each level predicted by the set fitted on the rest.

    The whole grid is searched with SEARCH_REPEATS probes a level; the FINALISTS best sets
    of that search, for all levels and for each level left out, are simulated again with
    REPEATS, and the choice is made among them. That keeps the full grid's reach at about a
    fifth of its cost (about 4 minutes a stack here)."""
    candidates = [(float(front), float(jump), float(slowdown))
                  for front, jump, slowdown in itertools.product(FRONTS_S, JUMPS, SLOWDOWNS)]
    search = [simulate_levels(model_for(measured, *candidate), measured, seed, SEARCH_REPEATS)
              for candidate in candidates]
    leave_out: list[int | None] = [None, *range(len(measured.levels))]
    finalists = sorted({k for without in leave_out
                        for k in sorted(range(len(candidates)),
                                        key=lambda k: worst(search[k], without))[:FINALISTS]})
    table = {k: simulate_levels(model_for(measured, *candidates[k]), measured, seed)
             for k in finalists}

    def best(without: int | None = None) -> int:
        return min(finalists, key=lambda k: worst(table[k], without))

    chosen = best()
    held_out = [table[best(without=i)][i] for i in range(len(measured.levels))]
    return Calibration(measured.stack, measured.replicas, measured.policy,
                       model_for(measured, *candidates[chosen]), table[chosen], held_out)
