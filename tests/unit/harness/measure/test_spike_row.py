"""The scorecard's spike rows from hand-built records and scaling logs on disk: violating
seconds and replica-seconds per stack as worked out by hand, an interval only from two spikes
on, and a scaling log read back from its parquet as it was written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.measure.metrics import Window
from harness.measure.records import write_parquet
from harness.measure.scaling import TrialScaling, frame_scaling, scaling_frame
from harness.measure.spike_row import SPIKE, SPIKE_SCALING, spike_rows
from tests.unit.harness.measure.test_scaling import records, ticks

WINDOW = Window(10.0, 10.0)  # [10, 20)
PEAKS = [(12.0, 16.0)]
FLEETS = {"diy": {"policy": "static", "min_replicas": 2, "max_replicas": 2, "replicas": 2},
          "opt": {"policy": "asymmetric", "min_replicas": 1, "max_replicas": 2, "replicas": 1}}


def spike_records(trial: int, slow_seconds: int) -> pd.DataFrame:
    """One request a second over the window; the first `slow_seconds` of the spike at 2 s."""
    rows = [{"scheduled_s": 10.0 + k,
             "done_s": 10.0 + k + (2.0 if 12 <= 10 + k < 12 + slow_seconds else 0.2),
             "trial": trial} for k in range(10)]
    return records(rows)


def write_log(folder: Path, stack: str, trial: int, scaling: TrialScaling) -> None:
    write_parquet(scaling_frame(scaling),
                  folder / stack / f"trial-{trial}" / SPIKE / SPIKE_SCALING)


def scaled(trial: int) -> TrialScaling:
    """1 replica to 13 s, one starting to 17 s, 2 ready to the end: 3 + 4 × 2 + 3 × 2."""
    return TrialScaling(trial, ticks([(9.0, 1, 0, 0), (13.0, 1, 1, 0), (17.0, 2, 0, 0)]), [
        {"event": "replica_stopped", "replica": "replica-1", "offset_s": -2.0,
         "drain_s": 0.5},
        {"event": "scale_up", "replica": None, "offset_s": 13.0, "from": 1, "to": 2},
        {"event": "replica_joined", "replica": "replica-1", "offset_s": 17.0,
         "start_s": 4.0}])


def test_one_spike_gives_each_stack_its_figures_and_no_interval(tmp_path: Path) -> None:
    write_log(tmp_path, "diy", 1, TrialScaling(1, ticks([])))  # a fixed fleet logs nothing
    write_log(tmp_path, "opt", 1, scaled(1))
    found = {"diy": spike_records(1, 0), "opt": spike_records(1, 3)}
    slo, cost = spike_rows(tmp_path, found, WINDOW, PEAKS, FLEETS, 1.0, "diy", "spike_short")
    assert slo.dimension == "spike_slo"
    assert slo.unit == "seconds"
    assert slo.setting == "spike_short, 1 × 10 s, short form"
    assert slo.stacks["diy"].value == 0
    assert slo.stacks["opt"].value == 3
    assert slo.stacks["opt"].ci_low is None
    assert slo.ratio is None  # nothing ÷ 0 violating seconds
    assert slo.winner is None
    assert slo.verdict.startswith("too close to call: one spike each (short form) gives no "
                                  "interval: diy 0 s; opt 3 s; ")
    assert slo.stacks["opt"].note == (
        "asymmetric, 1 → 2 replicas; P99 in the spike 2,000 ms over 4 successes, "
        "1 scale-up(s), the slowest added replica serving after 4 s, 0 failed by scaling")
    assert slo.stacks["diy"].note.startswith("static, 2 replicas; P99 in the spike 200 ms")
    assert cost.stacks["diy"].value == pytest.approx(20.0)  # 2 replicas × 10 s
    assert cost.stacks["opt"].value == pytest.approx(3 + 4 * 2 + 3 * 2)
    assert cost.ratio == pytest.approx(17 / 20)


def test_two_spikes_give_an_interval_that_stops_at_zero(tmp_path: Path) -> None:
    for trial in (1, 2):
        write_log(tmp_path, "diy", trial, TrialScaling(trial, ticks([])))
        write_log(tmp_path, "opt", trial, scaled(trial))
    found = {"diy": pd.concat([spike_records(1, 0), spike_records(2, 1)], ignore_index=True),
             "opt": pd.concat([spike_records(1, 3), spike_records(2, 4)], ignore_index=True)}
    slo, _ = spike_rows(tmp_path, found, WINDOW, PEAKS, FLEETS, 1.0, "diy", "spike_short")
    assert slo.stacks["opt"].trials == [3, 4]
    assert slo.stacks["opt"].value == 3.5
    assert slo.stacks["diy"].ci_low == 0.0  # 0.5 ± t × spread would reach below 0
    assert slo.stacks["opt"].ci_high is not None
    assert not slo.verdict.startswith("too close to call: one spike")


def test_a_scaling_log_reads_back_from_its_frame() -> None:
    back = frame_scaling(scaling_frame(scaled(3)), 3)
    assert back.trial == 3
    assert back.ticks["ready"].tolist() == [1, 1, 2]
    joined = next(event for event in back.events if event["event"] == "replica_joined")
    assert joined == {"offset_s": 17.0, "event": "replica_joined", "replica": "replica-1",
                      "start_s": 4.0}
