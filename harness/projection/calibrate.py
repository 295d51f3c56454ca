"""Calibrating the simulation on measurements: a `harness capacity` run's probes.

Each probe that ran whole is one measured load level: its offered rate, P50 and P99. The work
of a request alone on a replica is taken from the probe at the lowest rate (each request's
service time: answer done − sent). One parameter is then fitted, the batching cost
(`ReplicaModel.slowdown`), as the value whose simulation of the measured setup (its replicas,
its balancer policy, each level's rate) strays least from the measured P50 and P99, the worst
level counted. The fit is only trusted, and a projection only made, when that worst error is
within the bound (15 %) at 3 levels or more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from harness.errors import UsageError
from harness.projection.fleet_sim import SteadyRun, simulate_steady
from harness.projection.replica_model import ReplicaModel
from harness.report.results import CapacitySummary, ProbeRow, read_result

MAX_ERROR = 0.15
MIN_LEVELS = 3
SLOWDOWNS = np.geomspace(1e-3, 1.0, 31)  # the fit's search grid
REPEATS = 6  # simulated probes per level, pooled: one probe's window is short and noisy


@dataclass(frozen=True)
class Level:
    rate_qps: float
    p50_s: float
    p99_s: float
    requests: int
    duration_s: float  # the probe's measured window
    warmup_s: float


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


@dataclass(frozen=True)
class Measured:
    stack: str
    replicas: int
    policy: str
    levels: list[Level]
    work_s: np.ndarray  # service times at the lowest level
    held: float  # requests in flight per replica there (Little's law), at least 1

    def solo_work(self, slowdown: float) -> np.ndarray:
        """The lowest level's service times as a request alone would take them: each was
        slowed by the others it shared the replica with, about `held` - 1 of them."""
        return self.work_s / (1.0 + slowdown * (self.held - 1.0))


def whole_probes(probes: list[ProbeRow]) -> list[ProbeRow]:
    return sorted((p for p in probes if p.stopped_early is None and p.latency_p50_s
                   and p.latency_p99_s and math.isfinite(p.latency_p99_s)),
                  key=lambda p: p.offered_qps)


def read_measured(run: Path, stack: str) -> Measured:
    """The load levels and solo work of `stack` in the capacity run at `run`."""
    summary = read_result(run / "summary.json", CapacitySummary)
    if stack not in summary.stacks:
        raise UsageError(f"--calibrate-from {run}: no stack {stack!r} there (it has "
                         f"{', '.join(summary.stacks)})")
    measured = summary.stacks[stack]
    probes = whole_probes(measured.probes)
    if len(probes) < MIN_LEVELS:
        raise UsageError(f"--calibrate-from {run}: {stack} has {len(probes)} probe(s) that ran "
                         f"whole; calibration needs {MIN_LEVELS} load levels")
    records = pd.read_parquet(run / probes[0].records)
    done = records[records["ok"]]
    work = (done["done_s"] - done["sent_s"]).to_numpy(dtype=float)
    spec = yaml.safe_load((run / "specs" / f"{stack}.yaml").read_text())
    levels = [Level(p.offered_qps, float(p.latency_p50_s or 0), float(p.latency_p99_s or 0),
                    p.requests, summary.search.duration_s, summary.search.warmup_s)
              for p in probes]
    replicas = int(measured.replicas or spec.get("replicas", 1))
    held = max(1.0, (probes[0].concurrency or 0.0) / replicas)
    return Measured(stack, replicas, str(spec.get("balancer", {}).get("policy", "round_robin")),
                    levels, work, held)


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
