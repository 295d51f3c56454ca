from __future__ import annotations

import random
from collections import Counter

import pytest

from stacks.balancer.policies import POLICIES, ReplicaView, make_policy


def views(*loads: int) -> list[ReplicaView]:
    return [ReplicaView(f"r{i}", load) for i, load in enumerate(loads)]


def picks(policy_name: str, replicas: list[ReplicaView], n: int, seed: int = 0) -> list[str]:
    policy = make_policy(policy_name, random.Random(seed))
    return [policy.choose(replicas).name for _ in range(n)]


def test_round_robin_cycles_in_order() -> None:
    assert picks("round_robin", views(0, 0, 0), 7) == ["r0", "r1", "r2", "r0", "r1", "r2", "r0"]


def test_round_robin_ignores_load() -> None:
    assert picks("round_robin", views(100, 0), 4) == ["r0", "r1", "r0", "r1"]


def test_random_spreads_evenly() -> None:
    counts = Counter(picks("random", views(0, 0, 0, 0), 8000))
    assert set(counts) == {"r0", "r1", "r2", "r3"}
    # 2,000 expected each; binomial sd ~39, so ±200 is > 5 sd.
    assert all(1800 < count < 2200 for count in counts.values()), counts


def test_least_inflight_picks_the_least_loaded() -> None:
    assert set(picks("least_inflight", views(3, 1, 2), 50)) == {"r1"}


def test_least_inflight_breaks_ties_at_random() -> None:
    assert set(picks("least_inflight", views(1, 0, 0), 200)) == {"r1", "r2"}


class RecordingRandom(random.Random):
    """Remembers the pair P2C drew, so the test can check the pick against both."""

    def sample(self, population, k, **kwargs):  # type: ignore[no-untyped-def, override]
        self.last = super().sample(population, k, **kwargs)
        return self.last


def test_p2c_never_picks_the_busier_of_its_two() -> None:
    rng = RecordingRandom(1)
    policy = make_policy("p2c", rng)
    loads = random.Random(2)
    for _ in range(2000):
        replicas = views(*(loads.randrange(5) for _ in range(5)))
        chosen = policy.choose(replicas)
        a, b = (replicas[i] for i in rng.last)
        assert chosen in (a, b)
        assert chosen.load == min(a.load, b.load)


def test_p2c_compares_inflight_plus_the_load_replicas_report() -> None:
    # Same in-flight counts; r1 reports 6 requests of other clients: p2c counts 7 against 2.
    rng = RecordingRandom(3)
    policy = make_policy("p2c", rng)
    for _ in range(500):
        replicas = [ReplicaView("r0", inflight=2), ReplicaView("r1", inflight=1, external=6)]
        assert policy.choose(replicas).name == "r0"
    least = make_policy("least_inflight", random.Random(0))
    assert least.choose([ReplicaView("r0", 3), ReplicaView("r1", 0, external=4)]).name == "r0"


def test_p2c_never_picks_the_single_busiest_replica() -> None:
    assert "r3" not in set(picks("p2c", views(1, 2, 3, 9), 2000))


def test_p2c_favours_the_idle_replica_as_often_as_it_is_drawn() -> None:
    # r0 is idle; it is in 3 of the 6 equally likely pairs and wins each, so about half.
    counts = Counter(picks("p2c", views(0, 5, 5, 5), 6000))
    assert 2800 < counts["r0"] < 3200, counts


def test_p2c_with_one_replica_returns_it() -> None:
    assert picks("p2c", views(4), 3) == ["r0", "r0", "r0"]


def test_unknown_policy_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown policy 'fastest'") as excinfo:
        make_policy("fastest", random.Random(0))
    for name in POLICIES:
        assert name in str(excinfo.value)
