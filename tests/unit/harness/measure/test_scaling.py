"""Scaling metrics from hand-built records and scaling logs, equal to values worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.measure.metrics import Window
from harness.measure.records import DTYPES
from harness.measure.scaling import (
    TrialScaling,
    failed_by_scaling,
    fleet_timeline,
    peak_periods,
    read_trial_scaling,
    replica_seconds,
    scaling_metrics,
)
from harness.workload.arrivals import Segment

WINDOW = Window(10.0, 10.0)  # [10, 20)


def records(rows: list[dict[str, object]]) -> pd.DataFrame:
    defaults = {"first_byte_s": None, "status": 200, "ok": True, "error": None,
                "prompt_tokens": 50, "output_tokens": 10, "replica": "replica-0", "trial": 1}
    built = [{"index": k, "sent_s": row["scheduled_s"], **defaults, **row}
             for k, row in enumerate(rows)]
    return pd.DataFrame(built).astype({**DTYPES, "trial": "int64"})


def ticks(rows: list[tuple[float, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame([{"offset_s": t, "ready": r, "starting": s, "draining": d,
                          "desired": r + s, "concurrency": 0, "mean": 0.0}
                         for t, r, s, d in rows])


def test_replica_seconds_hold_each_tick_until_the_next() -> None:
    # 1 replica from the window's start to 14, 1 + 1 starting to 17, 2 ready to 20.
    fleet = ticks([(9.0, 1, 0, 0), (14.0, 1, 1, 0), (17.0, 2, 0, 0), (25.0, 1, 0, 1)])
    assert replica_seconds(fleet, WINDOW, None) == pytest.approx(4 * 1 + 3 * 2 + 3 * 2)
    assert replica_seconds(ticks([]), WINDOW, 3) == 30.0
    assert replica_seconds(ticks([]), WINDOW, None) is None


def test_violating_seconds_count_slow_p99_and_any_failure() -> None:
    frame = records([
        {"scheduled_s": 10.2, "done_s": 10.5},  # second 10 fine
        {"scheduled_s": 11.1, "done_s": 12.6},  # second 11: 1.5 s, over a 1 s SLO
        {"scheduled_s": 12.0, "done_s": 12.1, "ok": False, "status": 502,
         "error": "http_502"},  # second 12: a failure
        {"scheduled_s": 13.0, "done_s": 13.9},  # second 13 fine
        {"scheduled_s": 21.0, "done_s": 30.0},  # outside the window
    ])
    scaling = scaling_metrics(frame, [TrialScaling(1, ticks([(10.0, 1, 0, 0)]))], WINDOW,
                              slo_s=1.0, peaks=[(11.0, 12.0)], fixed_replicas=None)
    assert scaling["slo_violating_s"] == 2
    assert scaling["latency_p99_peak_s"] == pytest.approx(1.5)
    assert scaling["peak_requests"] == 1
    assert scaling["replica_seconds"] == 10.0


def test_failures_while_a_replica_leaves_are_blamed_on_scaling() -> None:
    frame = records([
        {"scheduled_s": 11.0, "done_s": 12.0, "ok": False, "error": "http_502",
         "replica": "replica-1"},  # while replica-1 drains: blamed
        {"scheduled_s": 11.0, "done_s": 12.5, "ok": False, "error": "connection",
         "replica": None},  # no replica known, while it drains: blamed
        {"scheduled_s": 11.0, "done_s": 12.5, "ok": False, "error": "http_502",
         "replica": "replica-0"},  # another replica's: not blamed
        {"scheduled_s": 15.0, "done_s": 18.0, "ok": False, "error": "timeout",
         "replica": "replica-1"},  # after its stop and the margin: not blamed
    ])
    events = [{"event": "replica_draining", "replica": "replica-1", "offset_s": 11.5},
              {"event": "replica_stopped", "replica": "replica-1", "offset_s": 13.0}]
    assert failed_by_scaling(frame, events) == 2


def test_peaks_are_the_upper_half_of_the_rate() -> None:
    shape = [Segment(1, 1, 10), Segment(4, 4, 30), Segment(1, 1, 20), Segment(4, 4, 30)]
    assert peak_periods(shape) == [(10, 40), (60, 90)]
    assert peak_periods([Segment(2, 2, 10)]) == []  # a steady rate has no spike


def test_a_scaling_log_reads_onto_the_records_clock(tmp_path: Path) -> None:
    log = tmp_path / "scaling.jsonl"
    lines = [{"at_unix_s": 1000.0 + t, "event": "tick", "replica": None, "concurrency": c,
              "mean": c, "recommendation": 1, "desired": 1, "ready": 1, "starting": 0,
              "draining": 0} for t, c in ((10.5, 2), (11.5, 3))]
    lines.append({"at_unix_s": 1012.0, "event": "scale_up", "replica": None, "from": 1,
                  "to": 2})
    log.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"torn')
    trial = read_trial_scaling(log, 1, anchor_unix_s=1000.0)
    assert trial.ticks["offset_s"].tolist() == [10.5, 11.5]
    assert [e["offset_s"] for e in trial.events] == [12.0]
    timeline = fleet_timeline(trial.ticks, Window(10.0, 3.0))
    assert timeline["second"].tolist() == [10, 11, 12]
    assert timeline["concurrency"].tolist() == [2, 3, 3]
