from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from harness.measure.records import UNRECORDED, account_for_schedule, read_records, write_parquet
from workloads.records import COLUMNS, RecordFile

ROW = [0, 0.5, 0.5, 0.6, 0.7, 200, True, None, 50, 50, "replica-0"]


def test_rows_written_are_read_back_typed(tmp_path: Path) -> None:
    records = RecordFile(tmp_path / "r.jsonl", {"anchor_unix_s": 1.0, "schedule_sha256": "ab"})
    records.add(ROW)
    records.add([1, 1.0, 1.1, None, 31.1, None, False, "timeout", None, None, None])
    records.close()
    header, frame = read_records(tmp_path / "r.jsonl")
    assert header == {"records_version": 1, "anchor_unix_s": 1.0, "schedule_sha256": "ab"}
    assert list(frame.columns) == list(COLUMNS)
    assert frame["ok"].tolist() == [True, False]
    assert frame["status"].isna().tolist() == [False, True]
    assert frame.loc[1, "error"] == "timeout"


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"records_version": 1}) + "\n" + json.dumps(ROW) + "\n"
                    + json.dumps(ROW)[:17])
    _, frame = read_records(path)
    assert len(frame) == 1


def test_every_scheduled_request_is_accounted_for(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    records = RecordFile(path, {})
    records.add([2, 2.0, 2.0, 2.1, 2.2, 200, True, None, 5, 5, "r"])
    records.add(ROW)
    records.add(ROW)  # a duplicate never counts twice
    records.close()
    _, frame = read_records(path)
    complete = account_for_schedule(frame, np.array([0.5, 1.5, 2.0, 3.0]))
    assert complete["index"].tolist() == [0, 1, 2, 3]
    assert complete["ok"].tolist() == [True, False, True, False]
    assert complete["error"].tolist()[1::2] == [UNRECORDED, UNRECORDED]
    assert complete["scheduled_s"].tolist() == [0.5, 1.5, 2.0, 3.0]
    write_parquet(complete.assign(trial=1), tmp_path / "records" / "trial-1.parquet")
    write_parquet(complete.assign(trial=2), tmp_path / "records" / "trial-2.parquet")
    both = pd.read_parquet(tmp_path / "records")
    assert len(both) == 8
    assert sorted(both["trial"].unique()) == [1, 2]
    assert not list((tmp_path / "records").glob(".*partial"))
