from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest
import yaml

from harness.workload.arrivals import Segment
from harness.workload.spec import Sinusoid, Stage, WorkloadSpec, load_workload_spec
from stacks.errors import SpecError

BASE = {"name": "w", "rate_qps": 10, "duration_s": 30}


def test_shipped_workloads_load() -> None:
    default = load_workload_spec("writing_assistant")
    assert (default.api, default.stream, default.arrival) == ("completions", False, "poisson")
    assert default.prompt_tokens.mean == 50
    assert default.output_tokens.mean == 50
    chat = load_workload_spec("writing_assistant_chat")
    assert (chat.api, chat.stream) == ("chat", True)
    assert load_workload_spec("writing_assistant_ramp").measured_s == 90


def test_warm_up_runs_at_the_first_rate_before_the_measured_stages() -> None:
    spec = WorkloadSpec.model_validate({
        "name": "w", "warmup_s": 5,
        "stages": [{"kind": "ramp", "from_qps": 2, "to_qps": 8, "duration_s": 10},
                   {"kind": "step", "from_qps": 8, "to_qps": 2, "steps": 3, "duration_s": 6},
                   {"kind": "spike", "base_qps": 1, "peak_qps": 9, "at_s": 1, "spike_s": 2,
                    "duration_s": 4}]})
    assert spec.segments() == [
        Segment(2, 2, 5), Segment(2, 8, 10),
        Segment(8, 8, 2), Segment(5, 5, 2), Segment(2, 2, 2),
        Segment(1, 1, 1), Segment(9, 9, 2), Segment(1, 1, 1)]
    assert spec.measured_s == 20


def test_rate_override_replaces_stages_and_duration_needs_a_rate() -> None:
    staged = load_workload_spec("writing_assistant_ramp")
    steady = staged.with_overrides(rate_qps=4, duration_s=12)
    assert steady.measured_segments() == [Segment(4, 4, 12)]
    with pytest.raises(SpecError, match="also give --rate"):
        staged.with_overrides(duration_s=12)


def test_a_rate_scale_multiplies_every_rate_and_leaves_the_times() -> None:
    levels = load_workload_spec("calibration_levels")
    quarter = levels.scaled(0.25)
    assert [(s.start_qps, s.duration_s) for s in quarter.segments()] == [
        (s.start_qps * 0.25, s.duration_s) for s in levels.segments()]
    assert quarter.model_dump(exclude={"stages"}) == levels.model_dump(exclude={"stages"})
    shaped = WorkloadSpec.model_validate({
        "name": "w", "stages": [
            {"kind": "ramp", "from_qps": 2, "to_qps": 8, "duration_s": 10},
            {"kind": "spike", "base_qps": 1, "peak_qps": 9, "at_s": 1, "spike_s": 2,
             "duration_s": 4},
            {"kind": "sinusoid", "mean_qps": 4, "amplitude_qps": 2, "period_s": 24,
             "duration_s": 24}]})
    doubled = shaped.scaled(2).stages
    assert doubled is not None
    assert doubled[0].model_dump() == {"kind": "ramp", "from_qps": 4, "to_qps": 16,
                                       "duration_s": 10}
    assert doubled[1].model_dump() == {"kind": "spike", "base_qps": 2, "peak_qps": 18,
                                       "at_s": 1, "spike_s": 2, "duration_s": 4}
    assert isinstance(doubled[2], Sinusoid)
    assert (doubled[2].mean_qps, doubled[2].amplitude_qps) == (8, 4)
    assert WorkloadSpec.model_validate(BASE).scaled(0.5).rate_qps == 5
    staircase = WorkloadSpec.model_validate({"name": "w", "stages": [
        {"kind": "step", "from_qps": 0.1, "to_qps": 0.7, "steps": 3, "duration_s": 9}]})
    assert [s.start_qps for s in staircase.scaled(3).measured_segments()] == [0.3, 1.2, 2.1]
    for bad in (-1, 0, math.inf):
        with pytest.raises(SpecError, match="--rate-scale must be a number above 0"):
            shaped.scaled(bad)


def test_every_stage_kind_s_rates_are_scaled() -> None:
    """A rate field added to a stage kind and not named *qps would be missed: caught here."""
    for kind in typing.get_args(typing.get_args(Stage)[0]):
        rates = [name for name, field in kind.model_fields.items()
                 if field.annotation is float and name != "duration_s"
                 and not name.endswith("_s")]
        assert rates, kind
        assert all(name.endswith("qps") for name in rates), (kind.__name__, rates)


@pytest.mark.parametrize(("change", "message"), [
    ({"rate_qps": None}, "give rate_qps and duration_s, or a list of stages"),
    ({"stages": [{"kind": "steady", "qps": 1, "duration_s": 1}]}, "not both"),
    ({"arrival": "bursty"}, "arrival: Input should be 'poisson' or 'constant'"),
    ({"prompt_tokens": {"mean": 500, "max": 100}}, "mean \\(500.0\\) must lie within"),
    ({"stagez": []}, "unknown field; allowed: name, description"),
])
def test_bad_specs_name_the_field(tmp_path: Path, change: dict[str, object],
                                  message: str) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    with pytest.raises(SpecError, match=message):
        load_workload_spec(str(path))


def test_unknown_workload_lists_the_known_ones() -> None:
    with pytest.raises(SpecError,
                       match="known: calibration_levels, saturated_decode, short_requests, "):
        load_workload_spec("nope")


def test_a_sinusoid_swings_around_its_mean() -> None:
    wave = Sinusoid(kind="sinusoid", mean_qps=3, amplitude_qps=2, period_s=120, duration_s=240)
    pieces = wave.segments()
    assert len(pieces) == 48  # 1/24 period each
    assert sum(piece.expected_requests for piece in pieces) == pytest.approx(3 * 240)
    rates = [piece.start_qps for piece in pieces]
    assert max(rates) == pytest.approx(5)
    assert min(rates) == pytest.approx(1)
    assert rates[6] == pytest.approx(5)  # the crest a quarter period in
    with pytest.raises(ValueError, match="amplitude_qps must not exceed mean_qps"):
        Sinusoid(kind="sinusoid", mean_qps=1, amplitude_qps=2, period_s=10, duration_s=10)
