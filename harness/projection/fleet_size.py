"""How many replicas a target rate needs at the SLO, per balancer policy.

The simulation cannot hold 200,000 requests a second, and need not: what a balancer policy
costs or saves is how close a fleet runs to N × one replica's rate before its P99 crosses the
SLO. That fraction (the policy's efficiency) is simulated with `SIM_REPLICAS` replicas of the
calibrated model; the fleet is then target ÷ (per-replica capacity × efficiency), the
per-replica capacity being this machine's simulated one or one the user gives (the seed's
H100 figures: 750 and 1,200 QPS a pod).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.projection.fleet_sim import rate_at_slo
from harness.projection.replica_model import ReplicaModel

SIM_REPLICAS = 16
SIM_S = 40.0


@dataclass(frozen=True)
class PolicyEfficiency:
    policy: str
    one_replica_qps: float  # simulated: one replica alone, at the SLO
    fleet_qps: float  # simulated: SIM_REPLICAS replicas behind the policy, at the SLO
    replicas: int = SIM_REPLICAS

    @property
    def efficiency(self) -> float:
        """The fleet's rate at the SLO ÷ (replicas × one replica's)."""
        return self.fleet_qps / (self.replicas * self.one_replica_qps)


def policy_efficiency(model: ReplicaModel, policy: str, slo_p99_s: float,
                      seed: int = 0) -> PolicyEfficiency:
    one = rate_at_slo(model, 1, policy, slo_p99_s, SIM_S, seed)
    fleet = rate_at_slo(model, SIM_REPLICAS, policy, slo_p99_s, SIM_S, seed)
    return PolicyEfficiency(policy, one, fleet)


def replicas_needed(target_qps: float, per_replica_qps: float, efficiency: float) -> int:
    return math.ceil(target_qps / (per_replica_qps * efficiency))
