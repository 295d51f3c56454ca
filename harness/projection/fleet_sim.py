"""A fleet in the simulation: Poisson arrivals at a steady rate (or given arrival times: a
measured schedule replayed), one or more balancers choosing
with the balancer's own policy code (`stacks.balancer.policies`), and the replicas of
`replica_model`. What comes out is each request's end-to-end latency, as the records give it
here.

With several balancers, each request goes to one at random (as a layer-4 load balancer or DNS
spreads clients), and each balancer knows what the stack's balancer knows: its own requests in
flight to each replica, and every `SCRAPE_S` what the replica reports running and waiting
beyond them (`ReplicaView.external`)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import simpy

from harness.projection.replica_model import ReplicaModel, SimReplica
from stacks.balancer.policies import ReplicaView, make_policy

WARMUP_S = 10.0
SCRAPE_S = 0.5  # how often a balancer reads each replica's load (the stack's load_interval_s)
DRAIN_S = 30.0  # after the last arrival: a request unfinished by then counts as never served


@dataclass(frozen=True)
class SteadyRun:
    latencies_s: np.ndarray  # one per request arriving in the measured window; inf: unserved
    rate_qps: float
    replicas: int
    policy: str

    def percentile(self, q: float) -> float:
        """Linear between the nearest ranks, as pandas' quantile (the measured side) is;
        infinite where that reaches an unserved request."""
        if not len(self.latencies_s):
            return math.nan
        ordered = np.sort(self.latencies_s)
        rank = (len(ordered) - 1) * q / 100
        low, high = ordered[math.floor(rank)], ordered[math.ceil(rank)]
        if math.isinf(high):
            return math.inf
        return float(low + (high - low) * (rank - math.floor(rank)))


def simulate_steady(model: ReplicaModel, replicas: int, policy: str, rate_qps: float,
                    duration_s: float = 60.0, seed: int = 0,
                    warmup_s: float = WARMUP_S, balancers: int = 1,
                    arrivals_s: Sequence[float] | None = None) -> SteadyRun:
    """`replicas` replicas behind `balancers` balancers of `policy` at `rate_qps` for
    `warmup_s` + `duration_s`; the latencies of the requests that arrived after the warm-up.
    With `arrivals_s` (ascending, from the start) requests arrive then instead of at Poisson
    times: a measured schedule's bursts are its own, and they set much of a short window's
    P99."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    finished: list[tuple[float, float]] = []
    fleet = [SimReplica(env, model, f"replica-{i}", finished) for i in range(replicas)]
    by_name = {replica.view.name: replica for replica in fleet}
    # One balancer sees each replica's own count; each of several keeps its own views.
    views = ([[replica.view for replica in fleet]] if balancers == 1 else
             [[ReplicaView(replica.view.name) for replica in fleet] for _ in range(balancers)])
    choosers = [make_policy(policy, random.Random(seed + k)) for k in range(balancers)]
    end = warmup_s + duration_s
    arrived = [0]  # in the measured window

    def gaps() -> Iterator[float]:
        if arrivals_s is None:
            while True:  # drawn one at a time, just before each arrival
                yield rng.exponential(1.0 / rate_qps)
        previous = 0.0
        for at in arrivals_s:
            yield max(at - previous, 0.0)
            previous = at

    def arrivals():  # type: ignore[no-untyped-def]  # a SimPy process
        for gap in gaps():
            yield env.timeout(gap)
            if env.now >= end:
                return
            arrived[0] += env.now >= warmup_s
            k = int(rng.integers(balancers)) if balancers > 1 else 0
            chosen = choosers[k].choose(views[k])
            by_name[chosen.name].submit(float(rng.choice(model.work_s)),
                                        chosen if balancers > 1 else None)

    def scrapes():  # type: ignore[no-untyped-def]  # a SimPy process
        while True:
            yield env.timeout(SCRAPE_S)
            for own in views:
                for view, replica in zip(own, fleet, strict=True):
                    view.external = max(replica.view.inflight - view.inflight, 0)

    env.process(arrivals())
    if balancers > 1:
        env.process(scrapes())
    env.run(until=end + DRAIN_S)
    served = [latency for at, latency in finished if warmup_s <= at < end]
    unserved = arrived[0] - len(served)
    latencies = np.array(served + [math.inf] * unserved)
    return SteadyRun(latencies, rate_qps, replicas, policy)


def rate_at_slo(model: ReplicaModel, replicas: int, policy: str, slo_p99_s: float,
                duration_s: float = 60.0, seed: int = 0, rel_tol: float = 0.01,
                balancers: int = 1) -> float:
    """The highest steady rate (whole fleet) whose simulated P99 is within the SLO, found by
    bisection between 0 and the fleet's saturation rate."""
    low, high = 0.0, replicas * model.saturation_qps()
    while high - low > rel_tol * max(high, 1e-9):
        middle = (low + high) / 2
        run = simulate_steady(model, replicas, policy, middle, duration_s, seed,
                              balancers=balancers)
        if run.percentile(99) <= slo_p99_s:
            low = middle
        else:
            high = middle
    return low
