"""The pieces of `harness capacity` that need no stack: the probe's failure watch and the
run's options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.errors import HarnessError
from harness.experiments.capacity.experiment import CapacityConfig, CapacityRun, FailureWatch
from harness.measure.follower import RecordFollower
from harness.measure.metrics import Window
from harness.report.capacity_tables import capacity_warnings, contribution_verdict
from harness.report.results import CapacityRatio, CapacitySummary, ProbeRow, StackCapacity


def row(index: int, scheduled: float, done: float, ok: bool = True) -> str:
    return json.dumps([index, scheduled, scheduled, done, done, 200 if ok else 500, ok,
                       None if ok else "http_500", 8, 4, "replica-0"]) + "\n"


def test_the_watch_counts_only_the_window_and_waits_for_a_torn_line(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    follower = RecordFollower(records)
    watch = FailureWatch(Window(1.0, 10.0), requests=100, slo_s=0.5, min_success=0.9)
    assert watch.check(follower.new_rows()) is None  # no file yet
    records.write_text(json.dumps({"records_version": 1}) + "\n"
                       + row(0, 0.5, 3.0)  # warm-up: late, but never measured
                       + row(1, 1.0, 2.0)  # late
                       + row(2, 1.5, 1.6)  # in time
                       + row(3, 11.0, 30.0))  # after the window
    assert watch.check(follower.new_rows()) is None
    assert (watch.late, watch.failed) == (1, 0)
    with records.open("a") as handle:
        handle.write(row(4, 2.0, 3.0) + row(5, 2.5, 3.5)[:10])  # the second one torn
    assert watch.check(follower.new_rows()) is not None  # 2 late of 100: P99 over the SLO
    assert (watch.late, watch.failed) == (2, 0)
    assert follower.count == 5
    with records.open("a") as handle:
        handle.write(row(5, 2.5, 3.5)[10:])
    watch.check(follower.new_rows())
    assert watch.late == 3  # the torn line counted once it was whole
    assert follower.count == 6


def test_failures_beyond_the_success_target_stop_a_probe(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps({"records_version": 1}) + "\n"
                       + "".join(row(i, 1.0 + i / 10, 1.1 + i / 10, ok=False) for i in range(10)))
    rows = RecordFollower(records).new_rows()
    lenient = FailureWatch(Window(1.0, 10.0), requests=100, slo_s=0.5, min_success=0.9)
    strict = FailureWatch(Window(1.0, 10.0), requests=100, slo_s=0.5, min_success=0.9999)
    assert lenient.check(rows) is None  # 90 % success is still possible
    reason = strict.check(rows)
    assert reason is not None
    assert reason == ("failing was certain: 10 failed and 0 over the SLO of the 100 requests "
                      "in the window")


def test_a_search_that_starts_above_its_ceiling_is_refused() -> None:
    with pytest.raises(ValidationError, match="--start-qps"):
        CapacityConfig(start_qps=50, max_qps=10)


def test_a_search_whose_lowest_rate_measures_nothing_is_refused_before_it_starts(
        tmp_path: Path) -> None:
    # From 0.5 QPS, growth 2: the floor is 0.125 QPS, whose 2 s window holds no request.
    config = CapacityConfig(stacks=["diy"], start_qps=0.5, duration_s=2,
                            warmup_s=0, out=tmp_path / "c")
    with pytest.raises(HarnessError, match=r"at 0\.125 QPS, the lowest rate .* --min-qps"):
        CapacityRun(config, observer=None)  # type: ignore[arg-type]  # refused before any use
    assert not (tmp_path / "c").exists()


def test_probes_too_short_for_their_p99_are_warned_of() -> None:
    def probe(requests: int, stopped: str | None = None) -> ProbeRow:
        return ProbeRow.model_construct(requests=requests, stopped_early=stopped)

    def searched(*probes: ProbeRow) -> CapacitySummary:
        return CapacitySummary.model_construct(stacks={
            "a": StackCapacity.model_construct(probes=list(probes))})

    steady = searched(probe(400), probe(150))
    short = searched(probe(400), probe(60), probe(30, "failing was certain"))
    assert capacity_warnings(steady) == []
    (warning,) = capacity_warnings(short)
    assert warning.startswith("1 of 2 probes judged whole had fewer than 100 requests")


@pytest.mark.parametrize(("low", "high", "said"), [
    (1.1, 1.5, "adds capacity"), (0.5, 0.9, "costs capacity"), (0.8, 1.3, "too close to call"),
    (None, None, "one trial: no interval")])
def test_an_optimization_is_credited_only_when_its_interval_excludes_1(
        low: float | None, high: float | None, said: str) -> None:
    ratio = CapacityRatio(stack="a", baseline="b", value=1.0, ci_low=low, ci_high=high,
                          method=None, verdict="")
    assert said in contribution_verdict(ratio)
