from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from stacks.autoscaler.config import AutoscalingSpec, measured_target
from stacks.autoscaler.policy import Observation, ScalerState, make_policy
from stacks.errors import SpecError


def run(spec: AutoscalingSpec, series: list[float], start: int = 1,
        static_replicas: int = 2) -> list[int]:
    """The fleet size after each one-second observation of `series`."""
    policy = make_policy(spec, static_replicas)
    state, sizes = ScalerState(start), []
    for second, concurrency in enumerate(series):
        state, decision = policy.decide(state, Observation(float(second), concurrency))
        sizes.append(decision.replicas)
    return sizes


ASYMMETRIC = AutoscalingSpec(policy="asymmetric", min_replicas=1, max_replicas=4,
                             target_concurrency=2, metric_window_s=1, up_window_s=0,
                             down_window_s=60, max_up_step=2, down_period_s=10)


def test_asymmetric_scales_up_at_once_by_at_most_its_step() -> None:
    sizes = run(ASYMMETRIC, [1.0] * 5 + [8.0] * 5)
    assert sizes[:5] == [1] * 5
    assert sizes[5:8] == [3, 4, 4]  # 8 in flight wants 4; two a step, bounded by max


def test_asymmetric_scales_down_one_at_a_time_only_after_its_window() -> None:
    sizes = run(ASYMMETRIC, [8.0] * 3 + [1.0] * 100)
    assert sizes[2] == 4
    lull = sizes[3:]
    first_down = lull.index(3)
    # The recommendation fell to 1 at the first low second (3); the highest of the last
    # 60 s stays 4 until the last high second (2) has left the window.
    assert first_down == 60
    assert lull[first_down + 1:first_down + 10] == [3] * 9  # down_period_s apart
    assert lull[first_down + 10] == 2
    assert lull[first_down + 20] == 1
    assert min(sizes) >= 1


def test_symmetric_waits_its_window_both_ways() -> None:
    spec = AutoscalingSpec(policy="symmetric", max_replicas=4, target_concurrency=2,
                           metric_window_s=1, window_s=10)
    sizes = run(spec, [1.0] * 5 + [8.0] * 15 + [1.0] * 15)
    assert sizes[5:15] == [1] * 10  # the lowest of the last 10 s is still 1
    assert sizes[15] == 4  # then at once, as far as the recommendation goes
    assert sizes[20:30] == [4] * 10
    assert sizes[30] == 1


def test_bounds_hold_whatever_the_load() -> None:
    spec = ASYMMETRIC.model_copy(update={"min_replicas": 2, "max_replicas": 3})
    sizes = run(spec, [0.0] * 100 + [1000.0] * 20 + [0.0] * 200, start=2)
    assert set(sizes) == {2, 3}


def test_static_never_scales() -> None:
    assert set(run(AutoscalingSpec(policy="static"), [0.0, 50.0, 0.0], start=2,
                   static_replicas=2)) == {2}


def test_no_flapping_on_a_noisy_flat_load() -> None:
    # A flat 3 in flight (1.5 replicas' worth at target 2), with noise, for 10 minutes.
    noise = np.random.default_rng(7).normal(3.0, 1.5, 600).clip(0).tolist()
    spec = ASYMMETRIC.model_copy(update={"metric_window_s": 6.0})
    sizes = run(spec, noise)
    reached = sizes.index(2)
    assert set(sizes[:reached]) <= {1}
    assert set(sizes[reached:]) == {2}  # up to 2 once, then held there


def test_tolerance_keeps_the_fleet_near_target() -> None:
    spec = ASYMMETRIC.model_copy(update={"tolerance": 0.1})
    # 2 replicas at 4.3 in flight: 7.5 % over their target of 4, within tolerance.
    assert run(spec, [4.3] * 5, start=2) == [2] * 5
    assert run(spec, [4.5] * 2, start=2)[-1] == 3


def test_a_reference_fills_what_the_spec_leaves_out() -> None:
    hpa = AutoscalingSpec(policy="asymmetric", reference="hpa")
    assert (hpa.up_window_s, hpa.down_window_s, hpa.max_up_step) == (0, 300, 4)
    ray = AutoscalingSpec(policy="asymmetric", reference="ray-serve", down_window_s=120)
    assert (ray.up_window_s, ray.down_window_s) == (30, 120)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValidationError, match="min_replicas"):
        AutoscalingSpec(min_replicas=3, max_replicas=2)


def test_a_target_measured_by_a_capacity_run_is_read_from_its_summary(tmp_path: Path) -> None:
    run = tmp_path / "capacity-run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"stacks": {
        "optimized": {"concurrency_per_replica": 17.5}, "old": {"capacity_qps": 3}}}))
    spec = AutoscalingSpec(policy="asymmetric", target_from="capacity-run")
    assert measured_target(spec, "optimized", tmp_path).target_concurrency == 12.25  # × 0.7
    assert measured_target(spec.model_copy(update={"target_utilization": 1.0}), "optimized",
                           tmp_path).target_concurrency == 17.5
    assert measured_target(AutoscalingSpec(), "x", tmp_path).target_concurrency == 2.0
    with pytest.raises(SpecError, match=r"has no stack 'diy' \(it has optimized, old\)"):
        measured_target(spec, "diy", tmp_path)
    with pytest.raises(SpecError, match="measured no concurrency at capacity for old"):
        measured_target(spec.model_copy(update={"target_stack": "old"}), "optimized", tmp_path)
    with pytest.raises(SpecError, match="is not a `harness capacity` summary"):
        measured_target(spec.model_copy(update={"target_from": "nowhere"}), "optimized",
                        tmp_path)
