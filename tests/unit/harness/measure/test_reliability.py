"""The reliability report from hand-built records and event logs, against answers worked out by
hand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.measure.metrics import Window
from harness.measure.records import DTYPES
from harness.measure.reliability import TrialEvents, read_trial_events, reliability
from harness.report.results import Reliability

WINDOW = Window(10.0, 20.0)  # scheduled 10 s to 30 s


def records(rows: list[dict[str, object]]) -> pd.DataFrame:
    defaults = {"first_byte_s": None, "status": 200, "ok": True, "error": None,
                "prompt_tokens": 50, "output_tokens": 10, "trial": 1}
    built = pd.DataFrame([{**defaults, "index": i, "scheduled_s": row["sent_s"], **row}
                          for i, row in enumerate(rows)])
    return built.astype({**DTYPES, "trial": "int64"})


def fail(error: str, **row: object) -> dict[str, object]:
    return {"ok": False, "error": error, "status": 502, **row}


KILL = {"fault": 0, "kind": "kill_replica", "replica": "r0", "planned_s": 15.0, "end_s": 15.0,
        "offset_s": 15.0}
# A kill of r0 at 15 s: the balancer ejects it at 15.5 s, the supervisor has it ready at 20 s,
# and the balancer takes it back at 21 s.
KILL_EVENTS = TrialEvents(
    trial=1, faults=[KILL],
    supervisor=[{"event": "replica_exited", "replica": "r0", "offset_s": 15.1},
                {"event": "replica_ready", "replica": "r0", "offset_s": 20.0}],
    balancer=[{"event": "ejected", "replica": "r0", "offset_s": 15.5, "reason": "refused"},
              {"event": "ejected", "replica": "r1", "offset_s": 16.0, "reason": "status"},
              {"event": "in_rotation", "replica": "r0", "offset_s": 21.0}],
    retries=3.0)
KILL_RECORDS = records([
    fail("http_502", replica="r0", sent_s=14.0, done_s=15.2),  # in flight on r0: lost
    {"replica": "r0", "sent_s": 14.5, "done_s": 14.9},  # finished before the kill
    {"replica": "r1", "sent_s": 14.8, "done_s": 15.3},  # in flight, but on the other replica
    fail("http_502", replica="r0", sent_s=15.2, done_s=15.25),  # sent to the dead replica
    fail("http_503", replica=None, sent_s=16.0, done_s=16.1),  # no replica left to take it
    fail("timeout", replica="r1", sent_s=25.0, done_s=35.0),  # nothing to do with the kill
    {"replica": "r0", "sent_s": 22.0, "done_s": 22.2},
])


def test_a_kill_in_flight_detection_recovery_and_every_failure_s_cause() -> None:
    report = Reliability.model_validate(reliability(KILL_RECORDS, [KILL_EVENTS], WINDOW, "k"))
    (fault,) = report.faults
    assert (fault.replica, fault.at_s, fault.for_s) == ("r0", 5.0, 0.0)
    assert (fault.in_flight, fault.in_flight_failed, fault.fates) == (1, 1, {"http_502": 1})
    assert fault.detect_s == pytest.approx(0.5)  # r1's ejection is no detection of r0's fault
    assert fault.recover_s == pytest.approx(6.0)  # back in rotation at 21 s, ready at 20 s
    assert report.failed_by_cause == {"in_flight": 1, "during_fault": 2, "other": 1}
    assert [(f.index, f.cause) for f in report.failures] == [
        (0, "in_flight"), (3, "during_fault"), (4, "during_fault"), (5, "other")]
    assert (report.detect_s_median, report.recover_s_median) == (0.5, 6.0)
    assert (report.undetected, report.unrecovered, report.retries) == (0, 0, 3.0)


def test_a_hang_never_ejected_recovers_when_resumed_and_an_overload_names_its_failures() -> None:
    hang = {"fault": 0, "kind": "hang_replica", "replica": "r1", "planned_s": 12.0,
            "end_s": 15.0, "offset_s": 12.25}
    overload = {"fault": 1, "kind": "overload", "replica": None, "planned_s": 20.0,
                "end_s": 25.0, "offset_s": 20.0}
    frame = records([
        {"replica": "r1", "sent_s": 11.0, "done_s": 15.3},  # held by the hang, then served
        {"replica": "r0", "sent_s": 12.0, "done_s": 12.5},
        fail("timeout", replica=None, sent_s=21.0, done_s=31.0),  # lost in the overload
        {"replica": "r0", "sent_s": 19.9, "done_s": 20.4},  # in flight when it began
    ])
    events = TrialEvents(trial=1, faults=[overload, hang], retries=None)
    report = Reliability.model_validate(reliability(frame, [events], WINDOW, "h"))
    hung, burst = report.faults
    assert (hung.kind, hung.in_flight, hung.fates, hung.detect_s) == \
        ("hang_replica", 1, {"ok": 1}, None)
    assert hung.recover_s == pytest.approx(3.0)  # resumed 3 s after the fault
    assert (burst.kind, burst.replica, burst.in_flight, burst.for_s) == ("overload", None, 1, 5.0)
    assert (burst.detect_s, burst.recover_s) == (None, None)
    assert report.failed_by_cause == {"overload": 1}
    assert (report.undetected, report.unrecovered, report.retries) == (1, 0, None)


def test_a_kill_whose_replica_never_came_back_is_unrecovered() -> None:
    events = TrialEvents(trial=1, faults=[KILL], balancer=KILL_EVENTS.balancer[:1])
    report = Reliability.model_validate(reliability(KILL_RECORDS, [events], WINDOW, "k"))
    assert report.faults[0].recover_s is None
    assert report.unrecovered == 1
    assert report.recover_s_median is None


def test_event_logs_are_read_onto_the_records_clock(tmp_path: Path) -> None:
    anchor = 1_764_600_000.0
    raw = tmp_path / "records.jsonl"
    raw.write_text(json.dumps({"records_version": 1, "anchor_unix_s": anchor,
                               "schedule_sha256": "x"}) + "\n")
    (tmp_path / "faults.jsonl").write_text(json.dumps({**KILL, "at_unix_s": anchor + 15}) + "\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "events.jsonl").write_text(json.dumps(
        {"at_unix_s": anchor + 20.5, "event": "replica_ready", "replica": "r0"}) + "\n"
        + '{"at_unix_s": 1764600')  # a torn last line, from a kill mid-write
    (tmp_path / "balancer-metrics.txt").write_text(
        'balancer_retries_total{replica="r0"} 2.0\nbalancer_retries_total{replica="r1"} 1.0\n')
    events = read_trial_events(tmp_path, 1, raw)
    assert [e["offset_s"] for e in events.supervisor] == [20.5]
    assert events.balancer == []
    assert events.retries == 3.0
    assert events.faults[0]["replica"] == "r0"


def test_a_kill_of_a_replica_still_restarting_is_already_down_not_undetected() -> None:
    again = {**KILL, "planned_s": 25.0, "end_s": 25.0, "offset_s": 25.0}
    events = TrialEvents(trial=1, faults=[KILL, again],
                         supervisor=[{"event": "replica_exited", "replica": "r0",
                                      "offset_s": 15.1},
                                     {"event": "replica_exited", "replica": "r0",
                                      "offset_s": 25.1}],
                         balancer=KILL_EVENTS.balancer[:1])
    report = Reliability.model_validate(reliability(KILL_RECORDS, [events], WINDOW, "k"))
    first, second = report.faults
    assert (first.already_down, second.already_down) == (False, True)
    assert second.detect_s is None
    assert report.undetected == 0
    assert report.unrecovered == 2
