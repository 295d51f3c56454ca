"""A `harness run` cut short (the harness killed, the machine gone) summarized from what reached
disk, so that nothing measured is lost.

The load generator flushes its records every `FLUSH_INTERVAL_S`, so a run killed mid-trial
holds every request that finished up to half a second before the kill. Finished trials have
their parquet; the trial that was running has only its raw `records.jsonl`. Its measured window
is cut where the records stop telling the whole story: at the scheduled time of the first
request in the window that has no record (still in flight, or never sent, when the run died).
Every request scheduled before that cut is accounted for; none after it is counted, as a
success or as a failure. A stack with finished trials is summarized over those alone (a cut
trial does not pool with whole ones); a stack whose only trial was cut is summarized over the
cut window, which its `window_s` shows. The summary's `interrupted` says what was cut, per
stack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from harness.errors import ResultsError
from harness.experiments.run import comparison_summary, measured_window
from harness.measure.metrics import Window
from harness.measure.records import account_for_schedule, read_records, write_parquet
from harness.report.results import ComparisonSummary, RunInfo, read_result
from harness.report.saved import read_trials
from harness.workload.spec import WorkloadSpec
from workloads.schedule import read_schedule

CUT = "interrupted"  # the error a request has when the run died before its record


def parquet_of(raw: Path) -> list[Path]:
    """Where a trial's raw records are kept as parquet: whole, or cut short."""
    records = raw.parent.parent / "records"
    return [records / f"{raw.parent.name}.parquet", records / f"cut-{raw.parent.name}.parquet"]


def needs_recovery(folder: Path) -> bool:
    """A `harness run` folder with a trial whose records never became parquet."""
    return any(not any(path.is_file() for path in parquet_of(raw))
               for raw in folder.glob("*/trial-*/records.jsonl"))


def cut_trial(frame: pd.DataFrame, window: Window) -> tuple[pd.DataFrame, float]:
    """The requests of a cut trial scheduled before its cut, and the cut (scheduled seconds)."""
    unknown = frame[(frame["error"] == CUT) & (frame["scheduled_s"] >= window.start_s)]
    cut_s = min(float(unknown["scheduled_s"].min()) if len(unknown) else window.end_s,
                window.end_s)
    return frame[frame["scheduled_s"] < cut_s].reset_index(drop=True), cut_s


def recover_run(folder: Path) -> ComparisonSummary:
    """Rebuild `summary.json` of a `harness run` folder from its records (see the module
    docstring); the cut trials' records are kept as parquet beside the others."""
    run = read_result(folder / "run.json", RunInfo)
    names = (run.model_extra or {}).get("stack_names")
    if run.kind != "comparison" or not names:
        raise ResultsError(f"{folder}: only a `harness run` folder (run.json naming its "
                           "stack_names) can be summarized from its records")
    workload = WorkloadSpec.model_validate(yaml.safe_load(
        (folder / "specs" / "workload.yaml").read_text()))
    schedule, sha256 = read_schedule(folder / "schedule.jsonl")
    offsets = np.array([entry.offset_s for entry in schedule.entries], dtype=np.float64)
    window = measured_window(workload)
    trials: dict[str, list[pd.DataFrame]] = {}
    cut: dict[str, Window] = {}
    interrupted: dict[str, str] = {}
    for name in names:
        trials[name] = read_trials(folder, name)
        for raw in sorted((folder / name).glob("trial-*/records.jsonl")):
            whole, partial = parquet_of(raw)
            if whole.is_file():
                continue
            header, frame = read_records(raw)
            if header["schedule_sha256"] != sha256:
                raise ResultsError(f"{raw} replayed schedule {header['schedule_sha256']}, not "
                                   f"this run's {sha256}")
            trial = int(raw.parent.name.removeprefix("trial-"))
            kept, cut_s = cut_trial(account_for_schedule(frame, offsets, CUT), window)
            kept = kept.assign(trial=trial)
            measured_s = max(0.0, cut_s - window.start_s)
            interrupted[name] = (f"trial {trial} cut short: {len(kept)} requests recorded, "
                                 f"measured {measured_s:g} s of {window.length_s:g} s")
            # A cut trial stands for its stack only where no whole trial does; then it is kept
            # as a trial (logged as one), else beside them.
            if not trials[name] and measured_s > 0:
                trials[name] = [kept]
                cut[name] = Window(window.start_s, measured_s)
                write_parquet(kept, whole)
            else:
                write_parquet(kept, partial)
    asked = run.model_extra or {}
    plan, scaling_plan = asked.get("ablation_plan"), asked.get("scaling_ablation_plan")
    summary = comparison_summary(folder.name, workload, sha256, trials,
                                 None if plan is None else (plan["stack"], plan["variants"]),
                                 cut, asked.get("scenario_name"), folder,
                                 scales=bool(asked.get("scenario_scales")),
                                 scaling_ablation=None if scaling_plan is None
                                 else (scaling_plan[0], scaling_plan[1], scaling_plan[2]),
                                 faults=asked.get("scenario_faults", True))
    summary.interrupted = interrupted or None
    summary.write(folder / "summary.json")
    return summary
