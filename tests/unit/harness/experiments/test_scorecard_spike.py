"""The scorecard's spike phase is refused, in one line that says what to change, where it
could not be played: a scenario that is not a load shape the autoscalers act on, a trial it
would share with the kill, a fleet that would scale beyond the slots it was started with."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.experiments.scorecard import (
    ScorecardConfig,
    spike_fleet,
    spike_scaling,
    spike_scenario,
)
from stacks.spec import StackSpec


def stack(name: str, replicas: int, scaling: dict[str, object] | None) -> StackSpec:
    return StackSpec.model_validate({"name": name, "engine": {"model": "models/tiny"},
                                     "replicas": replicas, "autoscaling": scaling})


def test_the_spike_needs_a_scaling_load_shape_and_a_trial_of_its_own() -> None:
    assert spike_scenario(ScorecardConfig(trials=2)).name == "spike_short"
    with pytest.raises(UsageError, match="--spike-scenario replica_kill: .* e.g. spike_short"):
        spike_scenario(ScorecardConfig(trials=2, spike_scenario="replica_kill"))
    with pytest.raises(UsageError, match="need --trials ≥ 2: each phase changes the fleet"):
        spike_scenario(ScorecardConfig(trials=1))
    # Without the spike or the kill, one trial is enough.
    assert spike_scenario(ScorecardConfig(trials=1, spike_trials=0)).name == "spike_short"
    assert spike_scenario(ScorecardConfig(trials=1, kill_trials=0)).name == "spike_short"


def test_only_a_stack_that_scales_is_scaled_and_only_within_its_slots() -> None:
    scaled = {"policy": "asymmetric", "min_replicas": 1, "max_replicas": 2}
    specs = [stack("fixed", 2, None), stack("still", 2, {**scaled, "policy": "static"}),
             stack("scaled", 2, scaled)]
    found = spike_scaling(list(specs))
    assert list(found) == ["scaled"]
    assert spike_fleet(specs[2], found["scaled"]) == {
        "policy": "asymmetric", "min_replicas": 1, "max_replicas": 2, "replicas": 1}
    assert spike_fleet(specs[0], None)["replicas"] == 2
    with pytest.raises(UsageError, match="within the 1 replicas it starts; set "
                                         "autoscaling.max_replicas ≤ replicas"):
        spike_scaling([stack("narrow", 1, scaled)])
