"""How many replicas a target rate needs at the SLO, per balancer policy.

The simulation cannot hold 200,000 requests a second, and need not: what a balancer policy
costs or saves is how close a fleet runs to N × one replica's rate before its P99 crosses the
SLO. That fraction (the policy's efficiency) is simulated with `SIM_REPLICAS` replicas of the
calibrated model; the fleet is then target ÷ (per-replica capacity × efficiency), the
per-replica capacity being this machine's simulated one or one the user gives (the seed's
H100 figures: 750 and 1,200 QPS a pod).

The simulated fleet runs one balancer for every `replicas_per_balancer` replicas, each request
sent to one of them at random. A single balancer in front of 16 replicas hands each of them
every 16th arrival of one Poisson stream under round-robin: far smoother arrivals than the
Poisson stream one replica is measured under, so such a fleet sustains more than 16 replicas'
worth, and that survives a merge of several balancers' round-robin (each merged stream is as
even over a long window as its parts). What several balancers change is what P2C knows: each
knows only its own requests in flight, and the rest as the replicas last reported them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.projection.fleet_sim import rate_at_slo
from harness.projection.replica_model import ReplicaModel

SIM_REPLICAS = 16
SIM_S = 40.0
REPLICAS_PER_BALANCER = 2  # as the measured stacks run: one balancer in front of 2 replicas


@dataclass(frozen=True)
class PolicyEfficiency:
    policy: str
    one_replica_qps: float  # simulated: one replica alone, at the SLO
    fleet_qps: float  # simulated: SIM_REPLICAS replicas behind the policy, at the SLO
    replicas: int = SIM_REPLICAS
    balancers: int = 1  # in front of those replicas

    @property
    def efficiency(self) -> float:
        """The fleet's rate at the SLO ÷ (replicas × one replica's)."""
        return self.fleet_qps / (self.replicas * self.one_replica_qps)


def one_replica_qps(model: ReplicaModel, slo_p99_s: float, seed: int = 0) -> float:
    """One replica's rate at the SLO, whatever the policy (alone, every one sends it all).
    Run as long as the fleet's replicas together: the same requests behind both P99s, so
    that neither rate is the noisier (a 40 s window alone moved it by 3 %)."""
    return rate_at_slo(model, 1, "round_robin", slo_p99_s, SIM_S * SIM_REPLICAS, seed)


def policy_efficiency(model: ReplicaModel, policy: str, slo_p99_s: float, seed: int = 0,
                      replicas_per_balancer: int = REPLICAS_PER_BALANCER,
                      one: float | None = None) -> PolicyEfficiency:
    """`one`: `one_replica_qps` where the caller has it already (it is the same for every
    policy)."""
    balancers = max(1, SIM_REPLICAS // replicas_per_balancer)
    one = one_replica_qps(model, slo_p99_s, seed) if one is None else one
    fleet = rate_at_slo(model, SIM_REPLICAS, policy, slo_p99_s, SIM_S, seed,
                        balancers=balancers)
    return PolicyEfficiency(policy, one, fleet, SIM_REPLICAS, balancers)


def replicas_needed(target_qps: float, per_replica_qps: float, efficiency: float) -> int:
    return math.ceil(target_qps / (per_replica_qps * efficiency))
