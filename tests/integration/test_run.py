"""`harness run` against test-double endpoints: open-loop timing, shared schedules, records that
survive a SIGKILL, and distributed load. Locust runs for real, as a subprocess."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml

from harness.experiments.run import RunConfig, run_experiment
from harness.measure.records import read_records
from stacks.launcher import QuietObserver, StartObserver
from stacks.process import spawn
from workloads.schedule import file_sha256

Start = Callable[..., str]


class QuietRun:
    def stack_starting(self, stack: str, trial: int) -> StartObserver:
        return QuietObserver()

    def load_started(self, stack: str, trial: int, requests: int) -> None:
        pass

    def load_progress(self, recorded: int) -> None:
        pass

    def trial_done(self, stack: str, trial: int, summary: dict[str, Any]) -> None:
        pass


def workload(tmp_path: Path, **fields: Any) -> str:
    spec = {"name": "tiny_test", "arrival": "constant", "rate_qps": 20, "duration_s": 4,
            "warmup_s": 1, "timeout_s": 10, "max_in_flight": 16,
            "prompt_tokens": {"mean": 8}, "output_tokens": {"mean": 4}, **fields}
    path = tmp_path / "workload.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def run(tmp_path: Path, stacks: list[str], **options: Any) -> dict[str, Any]:
    config = RunConfig(stacks=stacks, workload=options.pop("workload"), out=tmp_path / "out",
                       **options)
    return json.loads(run_experiment(config, QuietRun()).read_text())


def test_a_stall_shows_in_scheduled_latency_not_in_service_latency(
        fake_replica: Start, tmp_path: Path) -> None:
    # One sender, 20 sends/s, and the 31st request held 2 s: the 40 requests due meanwhile go
    # out late. Measured from their scheduled time they waited; from their send they did not.
    url = fake_replica("stall", "--stall-once-ms", "2000", "--stall-after", "30")
    summary = run(tmp_path, [f"stall={url}"],
                  workload=workload(tmp_path, max_in_flight=1, duration_s=6))
    figures = summary["stacks"]["stall"]
    assert figures["success_rate"] == 1.0
    assert figures["latency_p99_s"] > 1.5
    assert figures["service_p99_s"] < 0.2
    assert figures["send_lag_max_s"] > 1.5


def test_stacks_replay_the_same_schedule_and_p99_recomputes_from_records(
        fake_replica: Start, balancer: Start, tmp_path: Path) -> None:
    behind = balancer({"r0": fake_replica("r0"), "r1": fake_replica("r1", "--latency-ms", "5")},
                      "--policy", "round_robin")
    direct = fake_replica("direct", "--latency-ms", "20")
    summary = run(tmp_path, [f"balanced={behind}", f"direct={direct}"],
                  workload=workload(tmp_path), trials=2)
    out = tmp_path / "out"
    schedule_hash = file_sha256(out / "schedule.jsonl")
    assert summary["schedule_sha256"] == schedule_hash
    for name in ("balanced", "direct"):
        figures = summary["stacks"][name]
        assert figures["schedule_sha256"] == schedule_hash
        assert figures["trials"] == 2
        assert figures["success_rate"] == 1.0
        records = pd.read_parquet(out / figures["records"])
        measured = records[records["ok"] & (records["scheduled_s"] >= 1)
                           & (records["scheduled_s"] < 5)]
        latency = measured["done_s"] - measured["scheduled_s"]
        assert figures["latency_p99_s"] == float(np.quantile(latency, 0.99))
        assert len(records) == 2 * 100  # 20/s for 5 s (1 warm-up, 4 measured), twice
        assert figures["requests"] == 2 * 80
    assert summary["stacks"]["balanced"]["replica_share"] == {"r0": 0.5, "r1": 0.5}
    assert summary["ratios"]["direct"]["latency_p50_s"] > 1.5


def test_two_workers_split_the_schedule_and_record_every_request_once(
        fake_replica: Start, tmp_path: Path) -> None:
    url = fake_replica("w")
    summary = run(tmp_path, [f"w={url}"], workload=workload(tmp_path, rate_qps=50), workers=2)
    records = pd.read_parquet(tmp_path / "out" / summary["stacks"]["w"]["records"])
    assert records["index"].tolist() == list(range(250))
    assert records["ok"].all()
    assert summary["stacks"]["w"]["send_lag_p99_s"] < 0.05
    logs = tmp_path / "out" / "w" / "trial-1" / "logs"
    assert sorted(path.name for path in logs.iterdir()) == [
        "locust-worker-0.log", "locust-worker-1.log", "locust.log"]


def test_a_run_killed_with_sigkill_is_summarized_from_what_reached_disk(
        fake_replica: Start, tmp_path: Path) -> None:
    url = fake_replica("k", "--latency-ms", "20")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "harness.cli", "run", "--stacks", f"k={url}", "--workload",
            workload(tmp_path, rate_qps=50, duration_s=60), "--out", str(out)]
    harness = spawn(argv, tmp_path / "harness.log")
    raw = out / "k" / "trial-1" / "records.jsonl"
    try:
        deadline = time.monotonic() + 60
        while not (raw.is_file() and raw.read_bytes().count(b"\n") > 150):
            assert harness.poll() is None, (tmp_path / "harness.log").read_text()
            assert time.monotonic() < deadline, "no records appeared"
            time.sleep(0.1)
        children = psutil.Process(harness.pid).children(recursive=True)
        killed_at = time.time()
        harness.send_signal(signal.SIGKILL)
        harness.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []  # the load generator died with the harness: nothing left behind
    finally:
        if harness.poll() is None:
            kill_tree(harness)
    done = subprocess.run([sys.executable, "-m", "harness.cli", "log", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    figures = summary["stacks"]["k"]
    assert summary["interrupted"]["k"].startswith("trial 1 cut short")
    assert figures["success_rate"] == 1.0  # nothing the kill cut is counted as a failure
    assert 0 < figures["window_s"] < 60
    header, _ = read_records(raw)
    records = pd.read_parquet(out / "k" / "records" / "trial-1.parquet")
    # At most the last second before the kill is lost: every request scheduled before it
    # (answered in 20 ms) is in the summary, answered.
    before = killed_at - header["anchor_unix_s"] - 1.0
    expected = records[records["scheduled_s"] < before]
    assert len(expected) >= 0.9 * 50 * before
    assert expected["ok"].all()
    assert len(records[records["scheduled_s"] >= 1.0]) == figures["requests"]


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything it started (the load generator runs in its own
    session, so its group is signalled apart)."""
    family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    psutil.wait_procs(family, timeout=10)
    process.wait(timeout=10)


@pytest.mark.parametrize("bad", ["--workload=nope", "--stacks=a=ftp://x", "--rate=-1"])
def test_bad_input_exits_2_with_a_clear_line(bad: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", bad, "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert ("unknown workload" in line or "NAME=http" in line
            or line == "error: --rate: Input should be greater than 0 (got -1.0)")
