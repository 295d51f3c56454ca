"""Scenarios become timed signals and marked occurrences on the replay's clock; bad ones fail
with one line that says what to fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.workload.scenario import ScenarioSpec, load_scenario
from harness.workload.spec import WorkloadSpec, load_workload_spec
from stacks.errors import SpecError


def steady(duration_s: float = 60, warmup_s: float = 10) -> WorkloadSpec:
    return load_workload_spec("writing_assistant").with_overrides(10, duration_s) \
        .model_copy(update={"warmup_s": warmup_s})


def scenario(*faults: dict[str, object]) -> ScenarioSpec:
    return ScenarioSpec.model_validate({"name": "s", "faults": list(faults)})


def test_a_repeated_kill_lands_every_period_inside_the_window() -> None:
    plan = scenario({"kind": "kill_replica", "at_s": 15, "replica": 1, "every_s": 20}) \
        .plan(steady())
    # Window [10, 70): kills at 25, 45, 65 on the replay's clock.
    assert [(s.offset_s, s.replica, s.signal) for s in plan.signals] == [
        (25, 1, "SIGKILL"), (45, 1, "SIGKILL"), (65, 1, "SIGKILL")]
    assert [(o.start_s, o.end_s) for o in plan.occurrences] == [(25, 25), (45, 45), (65, 65)]
    assert plan.replicas_needed() == 2


def test_a_hang_stops_then_continues() -> None:
    plan = scenario({"kind": "hang_replica", "at_s": 5, "for_s": 3}).plan(steady())
    assert [(s.offset_s, s.signal) for s in plan.signals] == [(15, "SIGSTOP"), (18, "SIGCONT")]
    assert [(o.kind, o.start_s, o.end_s) for o in plan.occurrences] == [("hang_replica", 15, 18)]


def test_a_slow_replica_runs_one_factor_th_of_each_period() -> None:
    plan = scenario({"kind": "slow_replica", "at_s": 0, "for_s": 2, "factor": 4,
                     "period_s": 1.0}).plan(steady())
    assert [(s.offset_s, s.signal) for s in plan.signals] == [
        (10.0, "SIGSTOP"), (10.75, "SIGCONT"), (11.0, "SIGSTOP"), (11.75, "SIGCONT")]


def test_an_overload_is_a_spike_of_the_steady_rate() -> None:
    spec = scenario({"kind": "overload", "at_s": 15, "for_s": 10, "factor": 3})
    shaped = spec.shape(steady())
    rates = [(s.start_qps, s.duration_s) for s in shaped.segments()]
    assert rates == [(10, 10), (10, 15), (30, 10), (10, 35)]
    plan = spec.plan(shaped)
    assert plan.signals == []
    assert plan.replicas_needed() == 0
    assert [(o.kind, o.start_s, o.end_s) for o in plan.occurrences] == [("overload", 25, 35)]


def test_every_shipped_scenario_loads_and_plans_on_the_default_workload() -> None:
    workload = load_workload_spec("writing_assistant")
    for path in sorted(Path("workloads/scenarios").glob("*.yaml")):
        spec = load_scenario(path.stem)
        assert spec.name == path.stem
        shaped = spec.shape(workload)
        if spec.stages is not None:  # a load shape for the autoscalers
            assert spec.autoscale
            assert shaped.stages == spec.stages
            assert shaped.measured_s == sum(stage.duration_s for stage in spec.stages)
        else:
            assert spec.plan(shaped).occurrences


@pytest.mark.parametrize(("faults", "workload", "message"), [
    ([{"kind": "kill_replica", "at_s": 61}], steady(),
     "fault 1 (kill_replica) at_s 61 is past the measured window of 60 s"),
    ([{"kind": "overload", "at_s": 1, "for_s": 1, "factor": 2}],
     load_workload_spec("writing_assistant_ramp"), "an overload applies once, to a steady"),
])
def test_a_scenario_that_cannot_apply_says_why(faults: list[dict[str, object]],
                                               workload: WorkloadSpec, message: str) -> None:
    spec = scenario(*faults)
    with pytest.raises(SpecError, match=re.escape(message)):
        spec.plan(spec.shape(workload))


def test_unknown_and_invalid_scenarios_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="unknown scenario 'nope'; known: double_spike, "
                                        "overload, ramp, replica_hang, replica_kill, "
                                        "replica_slow, sinusoid, spike"):
        load_scenario("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nfaults: [{kind: hang_replica, at_s: 1}]\n")
    with pytest.raises(SpecError, match="for_s"):
        load_scenario(str(bad))


def test_a_shape_replaces_the_workloads_rate_and_plans_no_signal() -> None:
    spec = ScenarioSpec.model_validate({"name": "s", "autoscale": True, "stages": [
        {"kind": "steady", "qps": 1, "duration_s": 30},
        {"kind": "steady", "qps": 4, "duration_s": 60}]})
    shaped = spec.shape(steady())
    assert (shaped.rate_qps, shaped.measured_s) == (None, 90)
    assert [s.start_qps for s in shaped.segments()] == [1, 1, 4]  # the warm-up at the first
    assert spec.plan(shaped).signals == []


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "a scenario needs faults, stages or autoscale: true"),
    ({"stages": [{"kind": "steady", "qps": 1, "duration_s": 1}],
      "faults": [{"kind": "overload", "at_s": 0, "for_s": 1, "factor": 2}]},
     "put it in the stages instead"),
])
def test_a_scenario_that_does_nothing_or_overloads_a_shape_is_refused(
        fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScenarioSpec.model_validate({"name": "s", **fields})
