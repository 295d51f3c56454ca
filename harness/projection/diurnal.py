"""A day of traffic against an autoscaled fleet: replica-hours and SLO-violating minutes.

A day of requests at 200,000 a second is beyond a request-level simulation, so the day is
simulated a sync period at a time (SimPy: the autoscaler's ticks and each replica's cold start
are its processes). The load on the fleet is the rate; what a replica can take comes from the
request-level simulation of the calibrated replica (`per_replica_qps` at the SLO). The
autoscaler is the stack's own policy (`stacks.autoscaler.policy`), fed the concurrency a fleet
of that many replicas would hold (Little's law: rate × latency), with the target scaled to
the same utilization of one replica's concurrency at the SLO as the spec's. A replica it adds
serves `cold_start_s` later; one it removes stops at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import simpy

from stacks.autoscaler.config import AutoscalingSpec
from stacks.autoscaler.policy import Observation, ScalerState, make_policy

TICK_S = 15.0  # the HPA's sync period
DAY_S = 24 * 3600.0


def diurnal_rate(peak_qps: float, at_s: float, trough: float = 0.3) -> float:
    """A day's shape: the trough (a fraction of the peak) at 04:00, the peak at 16:00."""
    phase = 2 * math.pi * (at_s / DAY_S - 16 / 24)
    return peak_qps * (trough + (1 - trough) * (1 + math.cos(phase)) / 2)


@dataclass(frozen=True)
class DayResult:
    replica_hours: float
    violating_minutes: int
    peak_replicas: int
    static_replicas: int  # a fixed fleet sized for the peak
    static_replica_hours: float


def simulate_day(peak_qps: float, per_replica_qps: float, latency_s: float,
                 scaling: AutoscalingSpec, cold_start_s: float, target_utilization: float,
                 ) -> DayResult:
    """`per_replica_qps`: what one replica takes at the SLO; `latency_s`: a request's mean
    latency near it. The fleet starts sized for the first tick's rate."""
    env = simpy.Environment()
    per_replica_concurrency = per_replica_qps * latency_s
    spec = scaling.model_copy(update={
        "target_concurrency": target_utilization * per_replica_concurrency,
        "min_replicas": 1, "max_replicas": 100_000})
    first = max(1, math.ceil(diurnal_rate(peak_qps, 0.0) / (target_utilization
                                                             * per_replica_qps)))
    policy = make_policy(spec, first)
    ready = [first]
    starting: list[int] = []  # one token per replica starting, the newest last
    tokens = iter(range(1, 10**12))
    state = ScalerState(replicas=first)
    violating: set[int] = set()
    replica_seconds = [0.0]
    peak = [first]

    def started(token: int):  # type: ignore[no-untyped-def]  # a SimPy process: a cold start
        yield env.timeout(cold_start_s)
        if token in starting:  # not cancelled by a step down meanwhile
            starting.remove(token)
            ready[0] += 1

    def ticks():  # type: ignore[no-untyped-def]
        nonlocal state
        while env.now < DAY_S:
            rate = diurnal_rate(peak_qps, env.now)
            if rate / max(ready[0], 1) > per_replica_qps:
                violating.add(int(env.now // 60))
            concurrency = rate * latency_s  # what the load asks to hold (more, overloaded)
            state, decision = policy.decide(state, Observation(env.now, concurrency))
            have = ready[0] + len(starting)
            for _ in range(decision.replicas - have):
                starting.append(next(tokens))
                env.process(started(starting[-1]))
            for _ in range(have - decision.replicas):  # a start is cancelled before a stop
                if starting:
                    starting.pop()
                else:
                    ready[0] -= 1
            replica_seconds[0] += (ready[0] + len(starting)) * TICK_S
            peak[0] = max(peak[0], ready[0] + len(starting))
            yield env.timeout(TICK_S)

    env.process(ticks())
    env.run(until=DAY_S)
    static = math.ceil(peak_qps / per_replica_qps)
    return DayResult(replica_seconds[0] / 3600, len(violating), peak[0], static,
                     static * DAY_S / 3600)
