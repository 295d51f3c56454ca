"""The host through a trial: steal sampled from a kernel's counters as they move, the cores'
speed from a timed loop, kept line by line, and read back over each request's life."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.measure.host_timeline import (
    HOST_FILE,
    cpu_times,
    host_sampled,
    loop_speed,
    mean_over,
    read_host,
    request_host,
    tail_means,
)


def write_stat(path: Path, steal: int, total: int, busy: int) -> None:
    """A /proc/stat whose first line has `total` jiffies, `steal` of them stolen and `2 × busy`
    the guest's own (user and softirq); replaced at once, as the kernel's reads are whole."""
    idle = total - steal - 2 * busy
    part = path.with_suffix(".part")
    part.write_text(f"cpu  {busy} 0 0 {idle} 0 0 {busy} {steal} 0 0\ncpu0 1 2 3\n")
    os.replace(part, path)


def write_process(proc: Path, pid: int, ticks: int) -> None:
    """A process outside the run (its parent init) that has taken `ticks`."""
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    part = proc / str(pid) / "stat.part"
    part.write_text(f"{pid} (other) R 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0\n")
    os.replace(part, proc / str(pid) / "stat")


def test_the_sampler_keeps_the_shares_between_samples_and_the_loops_speed(
        tmp_path: Path) -> None:
    stat, proc = tmp_path / "stat", tmp_path / "proc"
    write_stat(stat, 0, 100, 20)
    write_process(proc, 4242, 0)
    done = threading.Event()

    def host() -> None:  # the guest busy half the time, the host taking another quarter,
        steal, total, busy = 0, 100, 20  # and another process a fifth
        while not done.wait(0.01):
            steal, total, busy = steal + 25, total + 100, busy + 25
            write_stat(stat, steal, total, busy)
            write_process(proc, 4242, total // 5 - 20)

    moving = threading.Thread(target=host)
    moving.start()
    try:
        with host_sampled(tmp_path / "trial-1", stat=stat, proc=proc, every_s=0.05):
            done.wait(1.2)
    finally:
        done.set()
        moving.join()
    samples = read_host(tmp_path / "trial-1")
    assert samples is not None
    assert len(samples) >= 4
    assert samples["steal_share"].to_numpy() == pytest.approx(0.25, abs=0.01)
    assert samples["busy_share"].to_numpy() == pytest.approx(0.5, abs=0.01)
    assert samples["unix_s"].is_monotonic_increasing
    assert (samples["loop_speed"] > 0).all()
    # once every OUTSIDE_EVERY samples; the process's ticks and /proc/stat's are read a
    # moment apart, so each share is good to about a tick in the hundreds a scan covers
    outside = samples["outside_share"].dropna()
    assert len(outside) >= 1
    assert outside.to_numpy() == pytest.approx(0.2, abs=0.03)


def test_the_loop_counts_only_its_own_cpu_time() -> None:
    """A loop that waits for half of its wall time (another thread holds the interpreter) is
    timed by its own CPU time: read by the wall clock it would look twice as slow. (Against
    a loop that does not wait it cannot be compared here: the cores' own speed moves by tens
    of percent on a busy shared machine, which is what the loop is there to see.)"""
    steps = 200_000
    assert loop_speed(steps) > 0.1  # million steps a second: any core this decade
    stop = threading.Event()
    holder = threading.Thread(target=lambda: [sum(range(1000)) for _ in iter(stop.is_set,
                                                                                True)])
    holder.start()  # holds the GIL half the time: the loop waits, its CPU time does not grow
    try:
        began = time.perf_counter()
        shared = statistics.median(loop_speed(steps) for _ in range(5))
        by_the_wall = 5 * steps / (time.perf_counter() - began) / 1e6
    finally:
        stop.set()
        holder.join()
    assert by_the_wall < 0.75 * shared


def test_a_kernel_without_steal_leaves_no_file_and_a_trial_without_one_reads_none(
        tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 10 500\n")  # before Linux 2.6.11: four columns
    assert cpu_times(stat) is None
    with host_sampled(tmp_path / "trial-1", stat=stat, every_s=0.01):
        pass
    assert not (tmp_path / "trial-1" / HOST_FILE).exists()
    assert read_host(tmp_path / "trial-1") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_this_kernel_reports_steal() -> None:
    counted = cpu_times()
    assert counted is not None
    assert 0 <= counted.steal <= counted.total
    assert 0 < counted.busy <= counted.total


def samples_of(shares: list[float], first_unix: float = 1000.1) -> pd.DataFrame:
    """Samples every 100 ms from `first_unix`, each the share of the 100 ms before it; the
    loop runs at 20 million steps a second, and at 10 while more than 30 % is stolen."""
    return pd.DataFrame({"unix_s": first_unix + 0.1 * np.arange(len(shares)),
                         "steal_share": shares,
                         "loop_speed": [10.0 if share > 0.3 else 20.0 for share in shares]})


def test_a_span_takes_the_mean_of_the_samples_covering_it() -> None:
    samples = samples_of([0.0] * 10 + [0.5] * 5 + [0.0] * 10)  # a burst over 1001.0–1001.5
    spans = mean_over(samples, "steal_share", np.array([1000.2, 1001.05, 1000.0, 1010.0]),
                      np.array([1000.5, 1001.35, 1002.5, 1011.0]))
    # 1000.2–1000.5: the samples at 1000.2…1000.6, no steal; 1001.05–1001.35: those at
    # 1001.1…1001.4, all in the burst; the whole run: 5 of 25; past the end: none
    assert spans[:3] == pytest.approx([0.0, 0.5, 0.5 * 5 / 25])
    assert np.isnan(spans[3])
    samples.loc[11, "steal_share"] = math.nan  # a sample without a value is not counted
    assert mean_over(samples, "steal_share", np.array([1001.05]),
                     np.array([1001.35])) == pytest.approx([0.5])


def test_each_request_gets_the_host_of_its_life_on_the_records_clock(tmp_path: Path) -> None:
    trial = tmp_path / "trial-1"
    trial.mkdir()
    samples_of([0.05] * 10 + [0.6] * 5 + [0.05] * 85).to_csv(trial / HOST_FILE, index=False)
    raw = trial / "records.jsonl"
    raw.write_text(json.dumps({"records_version": 1, "anchor_unix_s": 1000.0,
                               "schedule_sha256": "0" * 64}) + "\n")
    # On the records' clock the burst is 1.0–1.5 s: the third request lived through it, and
    # the samples at 0.9…1.7 s cover its life, five of them in the burst.
    frame = pd.DataFrame({"scheduled_s": [0.1, 2.0, 0.9, 5.0],
                          "done_s": [0.4, 2.3, 1.6, np.nan]})
    host = request_host(frame, trial, raw)
    assert host["steal"][:2].to_numpy() == pytest.approx([0.05, 0.05])
    assert host["steal"][2] == pytest.approx((5 * 0.6 + 4 * 0.05) / 9)
    assert host["core_speed"][:3].to_numpy() == pytest.approx([1.0, 1.0, (5 * 0.5 + 4) / 9])
    assert host.iloc[3].isna().all()  # never answered
    latency = frame["done_s"] - frame["scheduled_s"]
    overall, slowest = tail_means(latency, host["steal"])
    assert slowest == pytest.approx(host["steal"][2])
    assert overall == pytest.approx(host["steal"][:3].mean())
    assert request_host(frame, tmp_path / "trial-2", raw).isna().all().all()  # no samples
    assert tail_means(latency, pd.Series(np.nan, index=frame.index)) == (None, None)
    # A run that sampled steal alone, under the timeline's first name: its requests' steal,
    # and no speed
    (trial / HOST_FILE).unlink()
    samples_of([0.2] * 100).drop(columns="loop_speed").to_csv(trial / "steal.csv", index=False)
    host = request_host(frame, trial, raw)
    assert host["steal"][:3].to_numpy() == pytest.approx([0.2] * 3)
    assert host["core_speed"].isna().all()
