"""Reliability under a scenario's faults, from what each trial left on disk: the records, the
faults the player acted on (`faults.jsonl`), the supervisor's events (`logs/events.jsonl`), the
balancer's membership events (`logs/balancer-events.jsonl`) and its metrics at the trial's end
(`balancer-metrics.txt`). Wall-clock event times become offsets from the records' anchor.

For each fault occurrence (times in seconds from the fault as it was acted on):

- `in_flight`: requests sent to that replica before the fault and not finished at it (for an
  overload, every request in flight), and `fates`: how each ended (`ok` or its error class);
- `detect_s`: to the balancer's first ejection of the replica (null: never ejected);
- `already_down`: the replica was out already when the fault struck (still restarting after an
  earlier kill, or ejected): nothing was there to detect, and it does not count as undetected;
- `recover_s`: to the replica being back in rotation: restarted and ready (a kill), resumed
  (a hang or slow-down), and readmitted if it was ejected (null: not within the trial).

Each failed request in the measured window gets a `cause`: `in_flight` (on a replica when its
fault struck), `during_fault` (sent to a replica, or unattributed, between its fault and its
recovery), `overload` (scheduled during an overload) or `other`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.measure.metrics import Window, in_window
from stacks.event_log import read_events
from stacks.launcher import BALANCER_EVENTS, SUPERVISOR_EVENTS
from stacks.load import sum_samples
from workloads.records import read_record_lines

FAULTS_FILE = "faults.jsonl"
LOGS = "logs"  # a trial's stack logs, where the launcher writes both event logs
BALANCER_METRICS = "balancer-metrics.txt"
LISTED_FAILURES = 200  # failed requests listed one by one in a summary, at most
REPLICA_FAULTS = ("kill_replica", "hang_replica", "slow_replica")


@dataclass(slots=True)
class TrialEvents:
    """What one trial logged beside its records, on the records' clock."""

    trial: int
    faults: list[dict[str, Any]] = field(default_factory=list)
    supervisor: list[dict[str, Any]] = field(default_factory=list)
    balancer: list[dict[str, Any]] = field(default_factory=list)
    retries: float | None = None


def read_trial_events(trial_dir: Path, trial: int, records: Path) -> TrialEvents:
    """A trial's event logs, each event's `offset_s` set from the records' anchor."""
    anchor = float(read_record_lines(records)[0]["anchor_unix_s"])
    faults = [json.loads(line) for line in _lines(trial_dir / FAULTS_FILE)]

    def timed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**event, "offset_s": event["at_unix_s"] - anchor} for event in events]

    metrics = trial_dir / BALANCER_METRICS
    # A counter with no series yet is a balancer that retried nothing; no file: unknown.
    retries = (sum_samples(metrics.read_text(), frozenset({"balancer_retries_total"})) or 0.0) \
        if metrics.is_file() else None
    return TrialEvents(trial, faults, timed(read_events(trial_dir / LOGS / SUPERVISOR_EVENTS)),
                       timed(read_events(trial_dir / LOGS / BALANCER_EVENTS)), retries)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


def on_replica(records: pd.DataFrame, replica: str) -> pd.Series:
    """Which records that replica answered (unattributed ones: no)."""
    return (records["replica"] == replica).fillna(False).astype(bool)


def _first(events: list[dict[str, Any]], kind: str, replica: str, after_s: float,
           before_s: float = math.inf) -> float | None:
    times = [e["offset_s"] for e in events if e["event"] == kind and e["replica"] == replica
             and after_s <= e["offset_s"] < before_s]
    return min(times) if times else None


def _last(events: list[dict[str, Any]], kinds: tuple[str, ...], replica: str,
          before_s: float) -> str | None:
    """The last of these events for the replica before a moment, if any."""
    earlier = [e for e in events if e["event"] in kinds and e["replica"] == replica
               and e["offset_s"] < before_s]
    return max(earlier, key=lambda e: e["offset_s"])["event"] if earlier else None


def was_down(events: TrialEvents, replica: str, at_s: float) -> bool:
    """Whether a replica was out of rotation at a moment: exited and not ready since, or
    ejected and not readmitted since."""
    return (_last(events.supervisor, ("replica_exited", "replica_ready"), replica, at_s)
            == "replica_exited"
            or _last(events.balancer, ("ejected", "in_rotation"), replica, at_s) == "ejected")


def fault_outcome(records: pd.DataFrame, fault: dict[str, Any], events: TrialEvents,
                  next_same_s: float) -> dict[str, Any]:
    """One occurrence: who was in flight and how they ended, detection and recovery."""
    start, replica = fault["offset_s"], fault["replica"]
    end = start + max(0.0, round(fault["end_s"] - fault["planned_s"], 4))
    in_flight = records[(records["sent_s"] <= start)
                        & ~(records["done_s"] < start)]  # NaN: never finished
    if replica is not None:
        in_flight = in_flight[on_replica(in_flight, replica)]
    fates = in_flight["error"].where(~in_flight["ok"], "ok").fillna("unknown")
    outcome: dict[str, Any] = {
        "trial": events.trial, "fault": fault["fault"], "kind": fault["kind"],
        "replica": replica, "offset_s": start, "span_s": end - start,
        "in_flight": int(len(in_flight)),
        "in_flight_failed": int((~in_flight["ok"]).sum()),
        "fates": {str(k): int(v) for k, v in fates.value_counts().items()},
        "detect_s": None, "recover_s": None, "already_down": False}
    if replica is None:
        return outcome
    outcome["already_down"] = was_down(events, replica, start)
    ejected = _first(events.balancer, "ejected", replica, start - 0.05, next_same_s)
    back = end
    if fault["kind"] == "kill_replica":
        ready = _first(events.supervisor, "replica_ready", replica, start, next_same_s)
        back = ready if ready is not None else math.nan
    if ejected is not None:
        outcome["detect_s"] = max(0.0, ejected - start)
        readmitted = _first(events.balancer, "in_rotation", replica, ejected, next_same_s)
        back = max(back, readmitted) if readmitted is not None else math.nan
    outcome["recover_s"] = None if math.isnan(back) else max(0.0, back - start)
    return outcome


def trial_faults(records: pd.DataFrame, events: TrialEvents) -> list[dict[str, Any]]:
    outcomes = []
    faults = sorted(events.faults, key=lambda f: f["offset_s"])
    for i, fault in enumerate(faults):
        later = [f["offset_s"] for f in faults[i + 1:] if f["replica"] == fault["replica"]]
        outcomes.append(fault_outcome(records, fault, events, min(later, default=math.inf)))
    return outcomes


def failure_causes(failed: pd.DataFrame, outcomes: list[dict[str, Any]]) -> pd.Series:
    """Each failed request's cause (see the module docstring)."""
    causes = pd.Series("other", index=failed.index, dtype=object)
    sent, done, replica = failed["sent_s"], failed["done_s"], failed["replica"]
    for outcome in outcomes:
        start = outcome["offset_s"]
        if outcome["replica"] is None:
            hit = (failed["scheduled_s"] >= start) \
                & (failed["scheduled_s"] <= start + outcome["span_s"])
            causes[hit & (causes == "other")] = "overload"
            continue
        recovered = start + (outcome["recover_s"] if outcome["recover_s"] is not None
                             else math.inf)
        mine = on_replica(failed, outcome["replica"])
        at_fault = mine & (sent <= start) & ~(done < start)
        during = (mine | replica.isna()) & (sent > start) & (sent <= recovered)
        causes[at_fault] = "in_flight"
        causes[during & (causes == "other")] = "during_fault"
    return causes


def reliability(records: pd.DataFrame, trials: list[TrialEvents], window: Window,
                scenario: str) -> dict[str, Any]:
    """The reliability report of one stack over its trials."""
    outcomes: list[dict[str, Any]] = []
    listed: list[dict[str, Any]] = []
    causes: dict[str, int] = {}
    for events in trials:
        frame = records[records["trial"] == events.trial] if "trial" in records else records
        found = trial_faults(frame, events)
        failed = in_window(frame, window)
        failed = failed[~failed["ok"]]
        cause = failure_causes(failed, found)
        for name, count in cause.value_counts().items():
            causes[str(name)] = causes.get(str(name), 0) + int(count)
        for (_, row), why in zip(failed.iterrows(), cause, strict=True):
            if len(listed) < LISTED_FAILURES:
                listed.append({"trial": events.trial, "index": int(row["index"]),
                               "scheduled_s": float(row["scheduled_s"]),
                               "error": "unknown" if pd.isna(row["error"]) else row["error"],
                               "replica": None if pd.isna(row["replica"]) else row["replica"],
                               "cause": why})
        outcomes += [{**o, "at_s": o["offset_s"] - window.start_s} for o in found]
    detect = [o["detect_s"] for o in outcomes if o["detect_s"] is not None]
    recover = [o["recover_s"] for o in outcomes if o["recover_s"] is not None]
    retries = [e.retries for e in trials if e.retries is not None]
    return {
        "scenario": scenario,
        "faults": [{**{k: v for k, v in o.items() if k not in ("offset_s", "span_s")},
                    "for_s": o["span_s"]} for o in outcomes],
        "failed_by_cause": causes,
        "detect_s_median": float(np.median(detect)) if detect else None,
        "recover_s_median": float(np.median(recover)) if recover else None,
        "undetected": sum(o["replica"] is not None and o["detect_s"] is None
                          and not o["already_down"] for o in outcomes),
        "unrecovered": sum(o["replica"] is not None and o["recover_s"] is None
                           for o in outcomes),
        "retries": float(sum(retries)) if retries else None,
        "failures": listed,
    }
