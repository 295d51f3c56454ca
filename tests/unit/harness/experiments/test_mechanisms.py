"""`harness mechanisms`: each variant pair differs in one optimization only; a saturated replay
ends with its window; a folder's gains come from each trial's records, paired by trial, turned
so that > 1 means the optimization helps, and a mechanism not measured is pending."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.errors import UsageError
from harness.experiments.mechanism_plans import PLANS
from harness.experiments.mechanisms import ends_with
from harness.experiments.mechanisms_summary import calibration_folder, mechanisms_from_folder
from harness.measure.metrics import Window
from harness.measure.records import DTYPES
from harness.report.figures import mechanisms_waterfall
from harness.report.mechanisms_tables import mechanisms_table
from stacks.launcher import auto_binding
from stacks.spec import load_local_stack_spec

DIY, OPTIMIZED = load_local_stack_spec("diy"), load_local_stack_spec("optimized")


def changed(a: object, b: object) -> set[str]:
    first, second = a.model_dump(), b.model_dump()  # type: ignore[attr-defined]
    return {key for key in first if first[key] != second[key]}


@pytest.mark.parametrize(("mechanism", "part", "fields"), [
    ("w8a8", "engine", {"quantization"}),
    ("multi_api", "engine", {"api_server_count"}),
    ("p2c", "balancer", {"policy", "load_interval_s"}),
])
def test_on_differs_from_off_in_its_optimization_alone(mechanism: str, part: str,
                                                       fields: set[str]) -> None:
    off, on = PLANS[mechanism].variants(DIY, OPTIMIZED)
    assert changed(off, on) == {"name", part}
    assert changed(getattr(off, part), getattr(on, part)) == fields
    for field in fields:
        assert getattr(getattr(on, part), field) == getattr(getattr(OPTIMIZED, part), field)


def test_one_replica_keeps_the_share_of_cores_it_has_in_the_baseline() -> None:
    off, _ = PLANS["w8a8"].variants(DIY, OPTIMIZED)
    cores = sorted(os.sched_getaffinity(0))
    assert off.replicas == 1
    assert off.cpu.binding == [auto_binding(0, DIY.replicas, cores)]
    assert changed(DIY, off) == {"name", "replicas", "cpu"}
    p2c_off, _ = PLANS["p2c"].variants(DIY, OPTIMIZED)
    assert changed(DIY, p2c_off) == set()  # two replicas: the baseline as it is


def test_a_source_without_the_optimization_is_refused_in_one_line() -> None:
    with pytest.raises(UsageError, match="--source diy does not differ from --baseline diy"):
        PLANS["w8a8"].variants(DIY, DIY)


def test_a_saturated_replay_ends_once_a_request_finishes_after_the_window() -> None:
    stop = ends_with(Window(5.0, 20.0))
    row = [0, 1.0, 1.0, 1.1, 24.9, 200, True, None, 16, 128, "r0"]
    assert stop([row]) is None
    assert stop([row, [*row[:4], None, None, False, "timeout", 16, 0, None]]) is None
    assert stop([row, [*row[:4], 25.0, *row[5:]]]) is not None


def records(count: int, service_s: float, output_tokens: int, trial: int) -> pd.DataFrame:
    """`count` requests scheduled evenly over 10–29 s, each taking `service_s` (≤ 1 s): all
    finish within the window, 10–30 s."""
    rows = [{"index": i, "scheduled_s": 10.0 + 19.0 * i / count,
             "sent_s": 10.0 + 19.0 * i / count, "first_byte_s": None,
             "done_s": 10.0 + 19.0 * i / count + service_s, "status": 200, "ok": True,
             "error": None, "prompt_tokens": 16, "output_tokens": output_tokens,
             "replica": "r0"} for i in range(count)]
    return pd.DataFrame(rows).astype(DTYPES).assign(trial=trial)


def write_part(root: Path, mechanism: str, stacks: dict[str, list[pd.DataFrame]],
               replicas: int) -> None:
    part = root / mechanism
    (part / "specs").mkdir(parents=True)
    workload = {"name": "w", "rate_qps": 60, "duration_s": 20, "warmup_s": 10,
                "prompt_tokens": {"mean": 16}, "output_tokens": {"mean": 128}}
    (part / "specs" / "workload.yaml").write_text(yaml.safe_dump(workload))
    (part / "run.json").write_text(json.dumps({
        "kind": "comparison", "out": str(part), "started": "2026-12-02T08:00:00+00:00",
        "environment": {}, "stack_names": list(stacks)}))
    (part / "summary.json").write_text("{}")
    for stack, frames in stacks.items():
        (part / "specs" / f"{stack}.yaml").write_text(yaml.safe_dump({"replicas": replicas}))
        (part / stack / "records").mkdir(parents=True)
        for frame in frames:
            frame.to_parquet(part / stack / "records" / f"trial-{frame['trial'].iloc[0]}.parquet")


def write_root(root: Path, mechanisms: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "run.json").write_text(json.dumps({
        "kind": "mechanisms", "out": str(root), "started": "2026-12-02T08:00:00+00:00",
        "environment": {}, "baseline": "diy", "source": "optimized",
        "mechanisms": mechanisms}))


def test_gains_are_paired_by_trial_and_turned_so_that_above_one_helps(tmp_path: Path) -> None:
    write_root(tmp_path, ["w8a8", "multi_api", "p2c"])
    # W8A8: 1.3× the tokens in every trial, while the trials themselves drift by 1.5×.
    write_part(tmp_path, "w8a8", {
        "diy-1r": [records(400, 0.5, 128, 1), records(600, 0.5, 128, 2),
                   records(500, 0.5, 128, 3)],
        "diy-1r-w8a8": [records(520, 0.5, 128, 1), records(780, 0.5, 128, 2),
                        records(650, 0.5, 128, 3)]}, replicas=1)
    # P2C: half the P99 (0.4 s against 0.8 s) on two replicas; one trial only on P2C's side.
    write_part(tmp_path, "p2c", {
        "diy": [records(300, 0.8, 50, 1), records(300, 0.8, 50, 2)],
        "diy-p2c": [records(300, 0.4, 50, 1)]}, replicas=2)
    result = mechanisms_from_folder(tmp_path)
    assert result.pending == ["multi_api"]
    w8a8, p2c = result.mechanisms
    assert w8a8.off.trials == pytest.approx([400 * 128 / 20, 600 * 128 / 20, 500 * 128 / 20])
    assert w8a8.gain == pytest.approx(1.3)
    # The trials drift by 1.5×, their ratios not at all: pairing gives an interval of zero
    # width where pooled figures would overlap.
    assert w8a8.gain_ci_low == pytest.approx(1.3)
    assert w8a8.gain_ci_high == pytest.approx(1.3)
    assert w8a8.verdict.startswith("helps")
    assert w8a8.notes == [f"{name} answered {qps:.1f} of the {qps:.1f} QPS offered: not "
                          "saturated, its figure is a lower bound"
                          for name, qps in (("diy-1r", 25.0), ("diy-1r-w8a8", 32.5))]
    assert p2c.ratio == pytest.approx(0.5, rel=0.02)  # P99 on ÷ off
    assert p2c.gain == pytest.approx(2.0, rel=0.02)
    assert p2c.on.trials
    assert len(p2c.off.trials) == 2
    assert math.isnan(p2c.gain_ci_low or math.nan)  # one pair: no interval
    assert "one paired trial" in p2c.verdict
    cells = mechanisms_table(result).frame()
    assert list(cells["verdict"]) == ["helps", "too close to call", "pending"]
    assert cells["gain [95% CI]"].iloc[0] == "1.30× [1.30, 1.30]"
    bars = mechanisms_waterfall(result).data
    assert [bar.base[0] + bar.y[0] for bar in bars] == pytest.approx([1.0, 1.3, 2.6], rel=0.02)


def test_a_gain_whose_interval_includes_one_is_too_close_to_call(tmp_path: Path) -> None:
    write_root(tmp_path, ["multi_api"])
    write_part(tmp_path, "multi_api", {
        "diy-1r": [records(400, 0.1, 1, 1), records(500, 0.1, 1, 2)],
        "diy-1r-multi-api": [records(480, 0.1, 1, 1), records(450, 0.1, 1, 2)]}, replicas=1)
    (result,) = mechanisms_from_folder(tmp_path).mechanisms
    assert result.gain_ci_low is not None
    assert result.gain_ci_low < 1
    assert result.gain_ci_high is not None
    assert result.gain_ci_high > 1
    assert result.verdict.startswith("too close to call")
    assert not calibration_folder(tmp_path, "p2c").exists()
