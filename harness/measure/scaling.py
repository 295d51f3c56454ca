"""How a stack's fleet followed the load: the scaling metrics, from the per-request records and
the autoscaler's event log (`stacks.autoscaler.actuator`, `logs/scaling.jsonl` of each trial).
Times are seconds on the records' clock (from the trial's anchor); only the measured window
counts.

- `slo_violating_s`: seconds of the window (by scheduled time) whose requests' end-to-end
  P99 is over the SLO, or of which any request failed (`harness.measure.metrics.per_second`);
  mean over trials.
- `latency_p99_peak_s`: end-to-end P99 of the requests scheduled while the offered rate is
  in its upper half (the spikes: segments at or above the midpoint of the lowest and highest
  rate), pooled over trials.
- `replica_seconds`: the cost: ∫ replicas dt over the window, counting replicas ready,
  starting and draining (each holds its cores); mean over trials.
- `scale_ups`, `scale_downs`: the autoscaler's steps; `cold_starts`: replicas it started that
  joined, with `cold_start_s` (spawn → joined the balancer) as median and max.
- `failed_by_scaling`: failed requests that a scale-down could have caused: those that ended
  while a replica was draining or being stopped (from its `replica_draining` to one second
  after its `replica_stopped`) and were that replica's or of no known replica. It must be 0.

A trial without a scaling log (a fleet without autoscaler) counts its `replicas` throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.measure.metrics import Window, in_window, per_second
from harness.workload.arrivals import Segment
from stacks.event_log import read_events
from workloads.records import read_record_lines

SCALING_DIR = "scaling"  # beside a stack's records: its trials' scaling logs, as parquet
STOP_MARGIN_S = 1.0  # after a replica's stop, failures still counted against it
TIMELINE_COLUMNS = ("second", "ready", "starting", "draining", "desired", "concurrency")
FRAME_COLUMNS = ("offset_s", "event", "replica", "ready", "starting", "draining", "desired",
                 "concurrency", "mean", "from", "to", "start_s", "drain_s")


@dataclass(slots=True)
class TrialScaling:
    """One trial's scaling log on the records' clock."""

    trial: int
    ticks: pd.DataFrame  # offset_s, ready, starting, draining, desired, concurrency, mean
    events: list[dict[str, Any]] = field(default_factory=list)  # every event but ticks


def read_trial_scaling(log: Path, trial: int, anchor_unix_s: float) -> TrialScaling:
    """The scaling log of one trial (empty where none was written)."""
    rows = [{**event, "offset_s": event["at_unix_s"] - anchor_unix_s}
            for event in read_events(log)]
    ticks = pd.DataFrame([row for row in rows if row["event"] == "tick"],
                         columns=["offset_s", "ready", "starting", "draining", "desired",
                                  "concurrency", "mean"])
    return TrialScaling(trial, ticks, [row for row in rows if row["event"] != "tick"])


def read_replay_scaling(raw_records: Path, log: Path, trial: int) -> TrialScaling:
    """The scaling log of one replay on the clock of its records (from their anchor)."""
    anchor = float(read_record_lines(raw_records)[0]["anchor_unix_s"])
    return read_trial_scaling(log, trial, anchor)


def peak_periods(segments: list[Segment]) -> list[tuple[float, float]]:
    """Where the offered rate is in its upper half, as (start_s, end_s) on the schedule's
    clock (the first segment at 0)."""
    rates = [max(s.start_qps, s.end_qps) for s in segments]
    middle = (min(rates) + max(rates)) / 2
    periods, at = [], 0.0
    for segment, rate in zip(segments, rates, strict=True):
        if max(rates) > min(rates) and rate >= middle:
            periods.append((at, at + segment.duration_s))
        at += segment.duration_s
    return periods


def replica_seconds(ticks: pd.DataFrame, window: Window,
                    fixed_replicas: int | None) -> float | None:
    """∫ (ready + starting + draining) dt over the window, each tick's count held until the
    next (the first tick's count from the window's start)."""
    if ticks.empty:
        return None if fixed_replicas is None else float(fixed_replicas * window.length_s)
    times = ticks["offset_s"].to_numpy(dtype=np.float64)
    counts = (ticks["ready"] + ticks["starting"] + ticks["draining"]).to_numpy(dtype=np.float64)
    edges = np.clip(np.concatenate([[window.start_s], times[1:], [window.end_s]]),
                    window.start_s, window.end_s)
    return float(np.sum(counts * np.diff(edges)))


def failed_by_scaling(records: pd.DataFrame, events: list[dict[str, Any]]) -> int:
    """Failures that ended while a replica was leaving, on that replica or on none known."""
    failed = records[~records["ok"]]
    blamed = pd.Series(False, index=failed.index)
    for start in (e for e in events if e["event"] == "replica_draining"):
        stop = next((e for e in events if e["event"] == "replica_stopped"
                     and e["replica"] == start["replica"] and e["offset_s"] >= start["offset_s"]),
                    None)
        end = stop["offset_s"] + STOP_MARGIN_S if stop else np.inf
        mine = (failed["replica"] == start["replica"]) | failed["replica"].isna()
        blamed |= mine & (failed["done_s"] >= start["offset_s"]) & (failed["done_s"] <= end)
    return int(blamed.sum())


def scaling_metrics(records: pd.DataFrame, trials: list[TrialScaling], window: Window,
                    slo_s: float, peaks: list[tuple[float, float]],
                    fixed_replicas: int | None) -> dict[str, Any]:
    """The scaling metrics of one stack over its trials."""
    violating: list[int] = []
    cost: list[float] = []
    starts: list[float] = []
    failed = ups = downs = 0
    for trial in trials:
        frame = records[records["trial"] == trial.trial] if "trial" in records else records
        seconds = per_second(frame, window)
        violating.append(int(((seconds["latency_p99_s"] > slo_s) | (seconds["errors"] > 0))
                             .sum()))
        if (paid := replica_seconds(trial.ticks, window, fixed_replicas)) is not None:
            cost.append(paid)
        timed = [e for e in trial.events if window.start_s <= e["offset_s"] < window.end_s]
        ups += sum(e["event"] == "scale_up" for e in timed)
        downs += sum(e["event"] == "scale_down" for e in timed)
        starts += [float(e["start_s"]) for e in timed if e["event"] == "replica_joined"]
        failed += failed_by_scaling(in_window(frame, window), trial.events)
    scheduled = in_window(records, window)
    ok = scheduled[scheduled["ok"]]
    at_peak = np.zeros(len(ok), dtype=bool)
    for start, end in peaks:
        at_peak |= ((ok["scheduled_s"] >= start) & (ok["scheduled_s"] < end)).to_numpy()
    peak_latency = (ok["done_s"] - ok["scheduled_s"])[at_peak]
    count = max(len(trials), 1)
    return {
        "slo_violating_s": float(np.mean(violating)) if violating else None,
        "latency_p99_peak_s": float(peak_latency.quantile(0.99)) if len(peak_latency) else None,
        "peak_requests": int(len(peak_latency)),
        "replica_seconds": float(np.mean(cost)) if cost else None,
        "scale_ups": ups / count, "scale_downs": downs / count,
        "cold_starts": len(starts) / count,
        "cold_start_s_median": float(np.median(starts)) if starts else None,
        "cold_start_s_max": float(np.max(starts)) if starts else None,
        "failed_by_scaling": failed,
    }


def scaling_frame(trial: TrialScaling) -> pd.DataFrame:
    """A trial's whole scaling log as one frame on the records' clock, ticks and actions
    alike (`event`), kept beside its records (`<stack>/scaling/trial-<k>.parquet`)."""
    rows = [*trial.ticks.assign(event="tick").to_dict("records"), *trial.events]
    frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS)).sort_values("offset_s")
    return frame.astype({"offset_s": "float64", "event": "string", "replica": "string"})


def frame_scaling(frame: pd.DataFrame, trial: int) -> TrialScaling:
    """A trial's scaling log back from its frame (`scaling_frame`)."""
    ticks = frame[frame["event"] == "tick"]
    events = [{str(key): value for key, value in row.items() if not pd.isna(value)}
              for row in frame[frame["event"] != "tick"].to_dict("records")]
    return TrialScaling(trial, ticks[["offset_s", "ready", "starting", "draining", "desired",
                                      "concurrency", "mean"]].reset_index(drop=True), events)


def fleet_per_second(frames: list[pd.DataFrame], window: Window) -> pd.DataFrame:
    """The fleet per whole second of the window, mean over trials (`TIMELINE_COLUMNS`)."""
    seconds = [fleet_timeline(frame[frame["event"] == "tick"], window) for frame in frames]
    seconds = [frame for frame in seconds if not frame.empty]
    if not seconds:
        return pd.DataFrame(columns=list(TIMELINE_COLUMNS))
    return pd.concat(seconds).astype("float64").groupby("second", as_index=False).mean()


def fleet_timeline(ticks: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Per whole second of the window, the fleet as the last tick in that second saw it."""
    seconds = np.arange(int(np.floor(window.start_s)), int(np.ceil(window.end_s)))
    if ticks.empty:
        return pd.DataFrame(columns=list(TIMELINE_COLUMNS))
    by_second = ticks.assign(second=np.floor(ticks["offset_s"]).astype(int)) \
        .groupby("second").last()
    frame = by_second.reindex(seconds).ffill().bfill()
    return frame.reset_index(names="second")[list(TIMELINE_COLUMNS)]
