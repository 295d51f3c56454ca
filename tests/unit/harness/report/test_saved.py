"""Reading a results folder back: every trial's frame, in trial order."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.report.saved import read_trials, trial_files


def test_trials_are_read_in_trial_order_past_nine(tmp_path: Path) -> None:
    records = tmp_path / "diy" / "records"
    records.mkdir(parents=True)
    for trial in (10, 2, 1, 9):
        pd.DataFrame({"trial": [trial]}).to_parquet(records / f"trial-{trial}.parquet")
    (records / "notes.txt").write_text("not a trial")
    (records / "trial-3.partial.parquet").write_text("not a trial's records either")
    assert [file.name for file in trial_files(tmp_path, "diy")] == [
        "trial-1.parquet", "trial-2.parquet", "trial-9.parquet", "trial-10.parquet"]
    assert [int(frame["trial"].iloc[0]) for frame in read_trials(tmp_path, "diy")] == [1, 2, 9, 10]
    assert read_trials(tmp_path, "optimized") == []  # no folder: no trials
