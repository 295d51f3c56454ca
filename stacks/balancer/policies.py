"""Replica selection policies, looked up by name in `POLICIES`.

A policy picks one replica from the healthy ones the balancer hands it. It does no I/O, logging
or metrics: the balancer filters unhealthy replicas before asking, counts each replica's
in-flight requests around the upstream call, and (when load scraping is on) keeps the load the
replica reports beyond ours, so every policy stays a few lines.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class ReplicaView:
    """What a policy may look at: a replica's name, the balancer's own in-flight count, and
    `external`: requests the replica reported running or waiting (`vllm:num_requests_running`
    + `vllm:num_requests_waiting`) beyond the ones this balancer had in flight at that scrape
    — other clients' work. Between scrapes the live in-flight count keeps `load` current."""

    name: str
    inflight: int = 0
    external: int = 0

    @property
    def load(self) -> int:
        return self.inflight + self.external


class Policy(Protocol):
    def choose(self, replicas: Sequence[ReplicaView]) -> ReplicaView: ...

    def on_done(self, replica: str, ok: bool) -> None: ...


class RoundRobin:
    """Each replica in turn, in list order."""

    def __init__(self, rng: random.Random) -> None:
        self._next = 0

    def choose(self, replicas: Sequence[ReplicaView]) -> ReplicaView:
        replica = replicas[self._next % len(replicas)]
        self._next += 1
        return replica

    def on_done(self, replica: str, ok: bool) -> None:
        pass


class Uniform:
    """A replica drawn uniformly at random."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(self, replicas: Sequence[ReplicaView]) -> ReplicaView:
        return replicas[self._rng.randrange(len(replicas))]

    def on_done(self, replica: str, ok: bool) -> None:
        pass


class LeastInflight:
    """The replica with the least load; ties go to a random one of them."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(self, replicas: Sequence[ReplicaView]) -> ReplicaView:
        fewest = min(replica.load for replica in replicas)
        tied = [replica for replica in replicas if replica.load == fewest]
        return tied[self._rng.randrange(len(tied))] if len(tied) > 1 else tied[0]

    def on_done(self, replica: str, ok: bool) -> None:
        pass


class PowerOfTwoChoices:
    """Two distinct replicas at random; the less loaded one wins.

    Sampling two instead of scanning all keeps the herd off a single "least loaded" replica
    when many picks happen before loads are updated (Mitzenmacher's power of two choices).
    Ties go to the first of the two drawn, which is itself random.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def choose(self, replicas: Sequence[ReplicaView]) -> ReplicaView:
        if len(replicas) == 1:
            return replicas[0]
        first, second = self._rng.sample(range(len(replicas)), 2)
        a, b = replicas[first], replicas[second]
        return b if b.load < a.load else a

    def on_done(self, replica: str, ok: bool) -> None:
        pass


POLICIES: dict[str, Callable[[random.Random], Policy]] = {
    "round_robin": RoundRobin,
    "random": Uniform,
    "least_inflight": LeastInflight,
    "p2c": PowerOfTwoChoices,
}


def make_policy(name: str, rng: random.Random) -> Policy:
    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}") from None
    return factory(rng)
