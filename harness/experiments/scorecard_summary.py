"""A scorecard folder's rows, read from what its trials wrote: the phases' records parquet and
the capacity summary, with the settings `run.json` keeps. A pure function of the folder, so
the scorecard written after each trial, one rebuilt later and the one `harness log` logs are
the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness.measure.machine_speed import machine_check
from harness.measure.metrics import Window
from harness.measure.scorecard import (
    RowContext,
    capacity_row,
    near_capacity,
    p99_at_load_row,
    send_lag_check,
    success_under_kill_row,
)
from harness.measure.spike_row import SPIKE, spike_rows
from harness.measure.start_row import cold_start_row
from harness.report.results import CapacitySummary
from harness.report.scorecard_results import Scorecard, ScoreRow

SCORECARD_FILE = "scorecard.json"


def phase_records(folder: Path, stacks: list[str], phase: str) -> dict[str, pd.DataFrame]:
    """Each stack's records of a phase, pooled over the trials every stack finished (a
    scorecard cut short compares like with like); {} until there is one."""
    trials = {stack: {int(path.parent.parent.name.removeprefix("trial-")): path
                      for path in (folder / stack).glob(f"trial-*/{phase}/records.parquet")}
              for stack in stacks}
    shared = sorted(set.intersection(*(set(found) for found in trials.values())))
    if not shared:
        return {}
    return {stack: pd.concat([pd.read_parquet(trials[stack][trial]) for trial in shared],
                             ignore_index=True) for stack in stacks}


def spike_part(folder: Path, stacks: list[str], asked: dict[str, Any],
               slo_s: float) -> list[ScoreRow]:
    """The spike's two rows, from the window, peaks and fleets run.json keeps; [] until every
    stack has played one."""
    if not (spike := phase_records(folder, stacks, SPIKE)):
        return []
    return spike_rows(folder, spike, Window(*asked["spike_window_s"]),
                      [(start, end) for start, end in asked["spike_peaks_s"]],
                      asked["spike_fleets"], slo_s, stacks[0], asked["spike_scenario_name"])


def scorecard_from_folder(folder: Path, capacity: CapacitySummary) -> Scorecard:
    asked: dict[str, Any] = json.loads((folder / "run.json").read_text())
    stacks: list[str] = asked["stack_names"]
    baseline, slo_s, warmup_s = stacks[0], capacity.slo.p99_s, asked["phase_warmup_s"]
    rows: list[ScoreRow] = []
    pending: list[str] = []
    searched = [name for name in stacks if name in capacity.stacks]
    if searched == stacks:
        search = capacity.search
        rows.append(capacity_row(capacity, RowContext(
            f"{len(capacity.stacks[baseline].trials)} searches, {search.duration_s:g} s "
            f"probes to {search.tolerance:.0%}", ".", baseline)))
    else:
        pending.append("capacity")
    windows = {phase: Window(warmup_s, asked[f"{phase}_duration_s"])
               for phase in ("load", "kill")}
    load = phase_records(folder, stacks, "load")
    if load:
        trials = load[baseline]["trial"].nunique()
        row = p99_at_load_row(load, windows["load"], slo_s,
                              RowContext(f"{asked['load_qps']:g} QPS, {trials} × "
                                         f"{asked['load_duration_s']:g} s", "load", baseline))
        rows.append(near_capacity(row, asked["load_qps"], {  # a lower bound tells nothing here
            name: capacity.stacks[name].capacity_qps for name in searched
            if capacity.stacks[name].status == "measured"}))
    else:
        pending.append("p99_at_load")
    kill = phase_records(folder, stacks, "kill") if asked["kill_trials"] else {}
    if asked["kill_trials"]:
        if kill:
            trials = kill[baseline]["trial"].nunique()
            rows.append(success_under_kill_row(
                kill, windows["kill"],
                RowContext(f"{asked['kill_qps']:g} QPS, {trials} × "
                           f"{asked['kill_duration_s']:g} s, {asked['kill_scenario_name']}",
                           "kill", baseline)))
        else:
            pending.append("success_under_kill")
    if asked.get("cold_trials"):
        cold = cold_start_row(folder, stacks, asked["cold_trials"], baseline)
        if cold is None:
            pending.append("cold_start")
        else:
            rows.append(cold)
    if asked.get("spike_trials"):
        spike = spike_part(folder, stacks, asked, slo_s)
        rows += spike
        pending += [] if spike else ["spike_slo", "spike_cost"]
    # Not the spike's: it overloads a fleet at its floor by design, as an overloaded probe,
    # and its latency, taken from the schedule, counts any lag against the stack.
    lag = send_lag_check(capacity, {"load": (load, windows["load"]),
                                    "kill": (kill, windows["kill"])}, slo_s)
    machine = machine_check(folder, stacks, {
        name: [trial.capacity_qps for trial in capacity.stacks[name].trials]
        for name in searched})
    return Scorecard(run=folder.name, workload=capacity.workload, baseline=baseline,
                     stacks=stacks, slo_p99_s=slo_s, rows=rows, pending=pending,
                     send_lag=lag, machine=machine)
