"""The load generator against test-double endpoints: how each kind of failure is recorded, that a
connection left mid-answer is never reused, and Locust's own closing table. Locust runs for real,
as a subprocess, exactly as `harness run` starts it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.measure.loadgen import LoadJob, run_load
from harness.measure.records import read_records
from harness.workload.schedule import build_schedule, load_tokenizer
from harness.workload.spec import LengthSpec, WorkloadSpec
from stacks.process import free_port
from workloads.schedule import Schedule, write_schedule

Start = Callable[..., str]

LOCUSTFILE = Path(__file__).resolve().parents[2] / "workloads" / "writing_assistant.py"


def replay(url: str, tmp_path: Path, **fields: Any) -> tuple[Schedule, pd.DataFrame, str]:
    """Replay a short constant-rate schedule against `url`: (schedule, records, Locust's log)."""
    spec = WorkloadSpec(**{"name": "loadgen_test", "arrival": "constant", "rate_qps": 5,
                           "duration_s": 1, "warmup_s": 0, "timeout_s": 5, "max_in_flight": 4,
                           "prompt_tokens": LengthSpec(mean=8),
                           "output_tokens": LengthSpec(mean=4), **fields})
    schedule = build_schedule(spec, load_tokenizer(spec.tokenizer_path()))
    write_schedule(schedule, tmp_path / "schedule.jsonl")
    job = LoadJob(locustfile=LOCUSTFILE, host=url, schedule=tmp_path / "schedule.jsonl",
                  records=tmp_path / "records.jsonl", log_dir=tmp_path, model="fake",
                  senders=spec.max_in_flight,
                  expected_s=schedule.entries[-1].offset_s + spec.timeout_s)
    run_load(job, lambda recorded: None)
    _, frame = read_records(tmp_path / "records.jsonl")
    log = (tmp_path / "locust.log").read_text()
    return schedule, frame.sort_values("index", ignore_index=True), log


@pytest.mark.parametrize(("knobs", "fields", "error", "status"), [
    (["--fail-status", "500"], {}, "http_500", 500),
    (["--hang"], {"timeout_s": 1}, "timeout", None),
    (["--cut-stream-after", "2"], {"stream": True}, "connection", 200),
], ids=["server-error", "timeout", "stream-cut"])
def test_each_failure_is_recorded_with_its_class(fake_replica: Start, tmp_path: Path,
                                                 knobs: list[str], fields: dict[str, Any],
                                                 error: str, status: int | None) -> None:
    schedule, frame, _ = replay(fake_replica("f", *knobs), tmp_path, **fields)
    assert len(frame) == len(schedule.entries)
    assert not frame["ok"].any()
    assert set(frame["error"]) == {error}
    assert [None if pd.isna(code) else code for code in frame["status"]] == \
        [status] * len(frame)


def test_a_refused_connection_is_recorded_not_raised(tmp_path: Path) -> None:
    schedule, frame, _ = replay(f"http://127.0.0.1:{free_port()}", tmp_path)
    assert len(frame) == len(schedule.entries)
    assert set(frame["error"]) == {"connection"}


def test_streams_stamp_the_first_token(fake_replica: Start, tmp_path: Path) -> None:
    url = fake_replica("s", "--chunk-delay-ms", "50")
    _, frame, _ = replay(url, tmp_path, stream=True, output_tokens=LengthSpec(mean=6))
    assert frame["ok"].all()
    first_token = frame["first_byte_s"] - frame["sent_s"]
    whole = frame["done_s"] - frame["sent_s"]
    assert (first_token < 0.2).all()
    assert (whole - first_token > 0.2).all()  # five more tokens, 50 ms apart


def test_a_stream_cut_off_by_its_timeout_never_spills_into_the_next_answer(
        fake_replica: Start, tmp_path: Path) -> None:
    # One sender; streams of 2-14 tokens, 100 ms apart, and a 1 s timeout: the long ones time out
    # while the server is still streaming. If the sender reused that connection, the rest of the
    # old stream would be read as the next request's answer and break it.
    url = fake_replica("slow-stream", "--chunk-delay-ms", "100")
    schedule, frame, log = replay(url, tmp_path, max_in_flight=1, timeout_s=1, rate_qps=2,
                                  duration_s=5, stream=True, output_tokens=LengthSpec(
                                      distribution="uniform", mean=8, min=2, max=14))
    tokens = frame["index"].map({entry.index: entry.max_tokens for entry in schedule.entries})
    short, long = frame[tokens <= 6], frame[tokens >= 12]
    timed_out = frame.index[frame["error"] == "timeout"]
    # The schedule has what the test needs: long streams, and a short one right after one.
    assert len(long) >= 2
    assert any(frame.loc[i + 1, "index"] in set(short["index"])
               for i in timed_out if i + 1 in frame.index)
    assert set(frame["error"].dropna()) == {"timeout"}
    assert short["ok"].all()
    assert (long["error"] == "timeout").all()
    # Locust's closing table counts every request and every failure, from the records.
    totals = next(line for line in log.splitlines() if line.strip().startswith("Aggregated"))
    assert totals.split()[1] == str(len(schedule.entries))
    assert totals.split()[2].startswith(f"{len(timed_out)}(")


def test_without_an_endpoint_locust_stops_with_a_clear_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                           "--records", str(tmp_path / "records.jsonl")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    assert "no endpoint to send to: pass --host URL" in done.stderr
    assert not (tmp_path / "records.jsonl").exists()
