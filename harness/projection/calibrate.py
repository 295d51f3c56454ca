"""Calibrating the simulation on measured load levels (`harness.projection.measured`: a
capacity search's probes, or the steady stages of `workloads/calibration_levels.yaml`).

Each level is an offered rate with its measured P50 and P99; the work of a request alone on a
replica comes from the lowest level. One parameter is then fitted, the batching cost
(`ReplicaModel.slowdown`), as the value whose simulation of the measured setup (its replicas,
its balancer policy, each level's rate) strays least from the measured P50 and P99, the worst
level counted. The fit is only trusted, and a projection only made, when that worst error is
within the bound (15 %) at 3 levels or more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.projection.fleet_sim import SteadyRun, simulate_steady
from harness.projection.measured import MIN_LEVELS, Level, Measured
from harness.projection.replica_model import ReplicaModel

MAX_ERROR = 0.15
SLOWDOWNS = np.geomspace(1e-3, 1.0, 31)  # the fit's search grid
REPEATS = 6  # simulated probes per level, pooled: one probe's window is short and noisy


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


@dataclass(frozen=True)
class Calibration:
    stack: str
    replicas: int
    policy: str
    model: ReplicaModel
    fits: list[LevelFit]

    @property
    def max_error(self) -> float:
        return max(max(f.p50_error, f.p99_error) for f in self.fits)

    @property
    def trusted(self) -> bool:
        return len(self.fits) >= MIN_LEVELS and self.max_error <= MAX_ERROR


def simulate_levels(model: ReplicaModel, measured: Measured, seed: int) -> list[LevelFit]:
    """Each level as it was measured: probes of its window after its warm-up, at its rate,
    REPEATS of them pooled (an overloaded probe's P99 depends on how long it ran)."""
    fits = []
    for level in measured.levels:
        runs = [simulate_steady(model, measured.replicas, measured.policy, level.rate_qps,
                                level.duration_s, seed + k, level.warmup_s)
                for k in range(REPEATS)]
        pooled = SteadyRun(np.concatenate([run.latencies_s for run in runs]), level.rate_qps,
                           measured.replicas, measured.policy)
        fits.append(LevelFit(level, pooled.percentile(50), pooled.percentile(99)))
    return fits


def calibrate(measured: Measured, seed: int = 0) -> Calibration:
    """The batching cost whose simulation strays least from the measured levels (worst
    level, P50 or P99), over a log grid."""
    best: Calibration | None = None
    for slowdown in SLOWDOWNS:
        model = ReplicaModel(measured.solo_work(float(slowdown)), float(slowdown))
        fit = Calibration(measured.stack, measured.replicas, measured.policy, model,
                          simulate_levels(model, measured, seed))
        if best is None or fit.max_error < best.max_error:
            best = fit
    assert best is not None
    return best
