"""`harness project`: calibrate on measured load levels, then carry each stack to a target rate.

Everything it says is labelled: `measured` (a load level: a capacity probe or a steady stage),
`simulated (calibrated, error X%)` (the request-level simulation of a calibrated replica), or
`projected` (a fleet size or a day, from simulated figures and, where the user gives them,
per-replica capacities). A stack whose calibration misses the bound is reported with its error
and not projected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from harness.projection.calibrate import MAX_ERROR, Calibration, calibrate
from harness.projection.diurnal import simulate_day
from harness.projection.fleet_sim import simulate_steady
from harness.projection.fleet_size import (
    REPLICAS_PER_BALANCER,
    one_replica_qps,
    policy_efficiency,
    replicas_needed,
)
from harness.projection.measured import read_measured
from harness.projection.replica_model import ReplicaModel
from stacks.autoscaler.config import AutoscalingSpec

POLICIES = ("round_robin", "p2c")
# A replica that meets the SLO only while it holds fewer requests than this on average (its
# rate × the time of a request alone, Little's law) meets it by the tail of a request alone,
# not by how requests queue, and so does a fleet: a few slow draws decide both rates, and
# their ratio (a policy's efficiency) is noise.
MIN_BUSY_AT_SLO = 0.1
DEFAULT_SCALING = AutoscalingSpec(policy="asymmetric", reference="hpa")


class LevelRow(BaseModel):
    rate_qps: float
    speed: float = Field(default=1.0, description="how much slower the machine was around this "
                         "level than in the lowest level's stages; reported, not applied")
    steal: float | None = Field(default=None, description="the host's steal share over the "
                                "lives of the level's answered requests (null: not sampled)")
    steal_slowest: float | None = Field(default=None, description="the same over its slowest "
                                        "1 %, those that set its P99")
    core_speed: float | None = Field(default=None, description="the cores' speed over the "
                                     "lives of the level's answered requests, against their "
                                     "trial's usual (1: as usual; null: not sampled)")
    core_speed_slowest: float | None = Field(default=None, description="the same over its "
                                             "slowest 1 %")
    outside: float | None = Field(default=None, description="the share of CPU time taken by "
                                  "processes outside the run over the lives of the level's "
                                  "answered requests (null: not sampled)")
    outside_slowest: float | None = Field(default=None, description="the same over its "
                                          "slowest 1 %")
    p99_trials: list[float] = Field(default_factory=list, description="each trial's own P99 "
                                    "at this level (pooled, the level's P99 is near the "
                                    "slowest trial's)")
    measured_p50_s: float
    measured_p99_s: float
    simulated_p50_s: float
    simulated_p99_s: float
    p50_error: float
    p99_error: float
    held_out_error: float = Field(description="worst of P50 and P99 here, simulated with the "
                                  "parameters fitted on the other levels")


class FleetRow(BaseModel):
    policy: str
    efficiency: float = Field(description="simulated: a fleet's rate at the SLO ÷ (replicas × "
                              "one replica's)")
    simulated_replicas: int = Field(default=16, description="replicas of the simulated fleet "
                                    "the efficiency comes from")
    balancers: int = Field(default=1, description="balancers in front of them")
    per_replica_qps: float = Field(description="the per-replica capacity used")
    source: str = Field(description="where per_replica_qps comes from")
    replicas: int = Field(description="projected: replicas for the target rate at the SLO")


class DayRow(BaseModel):
    policy: str
    per_replica_qps: float
    replica_hours: float
    violating_minutes: int
    peak_replicas: int
    static_replicas: int
    static_replica_hours: float


class StackProjection(BaseModel):
    stack: str
    replicas_measured: int
    policy_measured: str
    slowdown: float = Field(description="the fitted batching cost (`ReplicaModel.slowdown`)")
    jump: float = Field(default=0.0, description="the fitted cost of sharing the engine at all "
                        "(`ReplicaModel.jump`)")
    front_s: float = Field(description="the fitted API server time per request, s "
                           "(`ReplicaModel.front_s`)")
    front_servers: int = Field(description="API servers per replica, from the spec")
    work_source: str = Field(default="", description="where a simulated request's work alone "
                             "came from (`solo_work`); absent from earlier projections")
    calibration_error: float = Field(description="worst relative error, P50 or P99, any level")
    held_out_error: float = Field(description="worst error at a level the fit left out (leave "
                                  "one level out)")
    trusted: bool
    note: str | None = Field(default=None, description="why it was not projected")
    levels: list[LevelRow]
    one_replica_qps: float | None = Field(default=None, description="simulated (calibrated)")
    cold_start_s: float = Field(description="a replica's start in the day: scheduled → serving")
    cold_start_source: str = Field(description="measured (a `harness coldstart` run, cold) or "
                                   "given (--cold-start-s)")
    fleets: list[FleetRow] = Field(default_factory=list)
    day: list[DayRow] = Field(default_factory=list)


class Projection(BaseModel):
    target_qps: float
    slo_p99_s: float
    calibrated_from: str
    max_error: float = MAX_ERROR
    replicas_per_balancer: int | None = Field(
        default=None, description="--replicas-per-balancer: the simulated fleet's replicas for "
        "each balancer; absent from projections made before it, which ran one balancer")
    cold_start_s: float = Field(description="--cold-start-s: for stacks without a measured one")
    coldstart_from: str | None = Field(default=None, description="the `harness coldstart` run "
                                       "the stacks' cold starts were read from")
    stacks: list[StackProjection]


def level_rows(calibration: Calibration) -> list[LevelRow]:
    return [LevelRow(rate_qps=f.level.rate_qps, speed=f.level.speed, steal=f.level.steal,
                     steal_slowest=f.level.steal_slowest, core_speed=f.level.core_speed,
                     core_speed_slowest=f.level.core_speed_slowest, outside=f.level.outside,
                     outside_slowest=f.level.outside_slowest,
                     p99_trials=list(f.level.p99_trials),
                     measured_p50_s=f.level.p50_s,
                     measured_p99_s=f.level.p99_s, simulated_p50_s=f.sim_p50_s,
                     simulated_p99_s=f.sim_p99_s, p50_error=f.p50_error, p99_error=f.p99_error,
                     held_out_error=out.error)
            for f, out in zip(calibration.fits, calibration.held_out, strict=True)]


def slo_in_the_tail_of_one_request(model: ReplicaModel, one_qps: float,
                                   slo_p99_s: float) -> str | None:
    """Why no fleet is projected where a replica meets the SLO only while nearly idle
    (`MIN_BUSY_AT_SLO`); None where it is busier."""
    busy = one_qps * (model.mean_work_s + model.front_s)  # Little's law, each request alone
    if busy >= MIN_BUSY_AT_SLO:
        return None
    return (f"not projected: a simulated replica meets P99 ≤ {slo_p99_s:g} s only "
            f"up to {one_qps:.3g} QPS, holding {busy:.2g} requests on average. The "
            "SLO lies in the tail of a request alone (its P99 alone "
            f"{float(np.quantile(model.work_s, 0.99)) + model.front_s:.2f} s), where "
            "a few slow requests, not how a balancer spreads the load, decide a "
            "fleet's rate at the SLO: no policy's efficiency can be told. Give a "
            "looser --slo-p99, or calibrate where a request alone is further "
            "inside the SLO.")


def project_stack(run: Path, stack: str, target_qps: float, slo_p99_s: float,
                  replica_qps: float | None, scaling: AutoscalingSpec | None,
                  cold_start_s: float, cold_start_source: str, seed: int,
                  replicas_per_balancer: int = REPLICAS_PER_BALANCER) -> StackProjection:
    measured = read_measured(run, stack)
    calibration = calibrate(measured, seed)
    result = StackProjection(
        stack=stack, replicas_measured=calibration.replicas,
        policy_measured=calibration.policy, slowdown=calibration.model.slowdown,
        jump=calibration.model.jump,
        front_s=calibration.model.front_s, front_servers=calibration.model.front_servers,
        work_source=measured.work_source,
        calibration_error=calibration.max_error, held_out_error=calibration.held_out_error,
        trusted=calibration.trusted,
        levels=level_rows(calibration), cold_start_s=cold_start_s,
        cold_start_source=cold_start_source)
    if not calibration.trusted:
        return result
    model = calibration.model
    unmet = (f"not projected: even at the lowest load a simulated replica's P99 is over "
             f"{slo_p99_s:g} s")
    one = one_replica_qps(model, slo_p99_s, seed)  # alone, a replica's policy makes no odds
    if one <= 0:
        result.note = unmet
        return result
    if (refusal := slo_in_the_tail_of_one_request(model, one, slo_p99_s)) is not None:
        result.note = refusal
        return result
    near = simulate_steady(model, 1, POLICIES[0], 0.9 * one, seed=seed)
    latency = float(near.latencies_s[near.latencies_s < float("inf")].mean())
    for policy in POLICIES:
        found = policy_efficiency(model, policy, slo_p99_s, seed, replicas_per_balancer, one)
        if found.fleet_qps <= 0:
            result.note = unmet
            result.fleets, result.day = [], []
            return result
        result.one_replica_qps = found.one_replica_qps
        per_replica = replica_qps or found.one_replica_qps
        source = "given" if replica_qps else "simulated (calibrated)"
        result.fleets.append(FleetRow(
            policy=policy, efficiency=found.efficiency, simulated_replicas=found.replicas,
            balancers=found.balancers, per_replica_qps=per_replica, source=source,
            replicas=replicas_needed(target_qps, per_replica, found.efficiency)))
        fleet_qps = per_replica * found.efficiency
        spec = scaling if scaling is not None and scaling.scales else DEFAULT_SCALING
        day = simulate_day(target_qps, fleet_qps, latency, spec, cold_start_s,
                           spec.target_utilization)
        result.day.append(DayRow(policy=policy, per_replica_qps=fleet_qps,
                                 replica_hours=day.replica_hours,
                                 violating_minutes=day.violating_minutes,
                                 peak_replicas=day.peak_replicas,
                                 static_replicas=day.static_replicas,
                                 static_replica_hours=day.static_replica_hours))
    return result
