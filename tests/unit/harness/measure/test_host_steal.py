"""The host's steal through a trial: sampled from a kernel's counters as they move, kept line by
line, and read back as each request's share over its life."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.measure.host_steal import (
    STEAL_FILE,
    read_steal,
    request_steal,
    steal_and_total,
    steal_over,
    steal_sampled,
    tail_steal,
)


def write_stat(path: Path, steal: int, total: int) -> None:
    """A /proc/stat whose first line has `total` jiffies, `steal` of them stolen; replaced at
    once, as the kernel's reads are whole."""
    idle = total - steal - 40
    part = path.with_suffix(".part")
    part.write_text(f"cpu  10 0 10 {idle} 0 0 20 {steal} 0 0\ncpu0 1 2 3\n")
    os.replace(part, path)


def test_the_sampler_keeps_the_share_of_time_stolen_between_samples(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    write_stat(stat, 0, 100)
    done = threading.Event()

    def host() -> None:  # a host that steals 1 jiffy in 4, 25 at a time
        steal, total = 0, 100
        while not done.wait(0.01):
            steal, total = steal + 25, total + 100
            write_stat(stat, steal, total)

    moving = threading.Thread(target=host)
    moving.start()
    try:
        with steal_sampled(tmp_path / "trial-1", stat=stat, every_s=0.05):
            done.wait(0.5)
    finally:
        done.set()
        moving.join()
    samples = read_steal(tmp_path / "trial-1")
    assert samples is not None
    assert len(samples) >= 4
    assert samples["steal_share"].to_numpy() == pytest.approx(0.25, abs=0.01)
    assert samples["unix_s"].is_monotonic_increasing


def test_a_kernel_without_steal_leaves_no_file_and_a_trial_without_one_reads_none(
        tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 10 500\n")  # before Linux 2.6.11: four columns
    assert steal_and_total(stat) is None
    with steal_sampled(tmp_path / "trial-1", stat=stat, every_s=0.01):
        pass
    assert not (tmp_path / "trial-1" / STEAL_FILE).exists()
    assert read_steal(tmp_path / "trial-1") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_this_kernel_reports_steal() -> None:
    counted = steal_and_total()
    assert counted is not None
    assert 0 <= counted[0] <= counted[1]


def samples_of(shares: list[float], first_unix: float = 1000.1) -> pd.DataFrame:
    """Samples every 100 ms from `first_unix`, each the share of the 100 ms before it."""
    return pd.DataFrame({"unix_s": first_unix + 0.1 * np.arange(len(shares)),
                         "steal_share": shares})


def test_a_span_takes_the_mean_of_the_samples_covering_it() -> None:
    samples = samples_of([0.0] * 10 + [0.5] * 5 + [0.0] * 10)  # a burst over 1001.0–1001.5
    spans = steal_over(samples, np.array([1000.2, 1001.05, 1000.0, 1010.0]),
                       np.array([1000.5, 1001.35, 1002.5, 1011.0]))
    # 1000.2–1000.5: the samples at 1000.2…1000.6, no steal; 1001.05–1001.35: those at
    # 1001.1…1001.4, all in the burst; the whole run: 5 of 25; past the end: none
    assert spans[:3] == pytest.approx([0.0, 0.5, 0.5 * 5 / 25])
    assert np.isnan(spans[3])


def test_each_request_gets_the_steal_of_its_life_on_the_records_clock(tmp_path: Path) -> None:
    trial = tmp_path / "trial-1"
    trial.mkdir()
    samples_of([0.05] * 10 + [0.6] * 5 + [0.05] * 85).to_csv(trial / STEAL_FILE, index=False)
    raw = trial / "records.jsonl"
    raw.write_text(json.dumps({"records_version": 1, "anchor_unix_s": 1000.0,
                               "schedule_sha256": "0" * 64}) + "\n")
    # On the records' clock the burst is 1.0–1.5 s: the third request lived through it, and
    # the samples at 0.9…1.7 s cover its life, five of them in the burst.
    frame = pd.DataFrame({"scheduled_s": [0.1, 2.0, 0.9, 5.0],
                          "done_s": [0.4, 2.3, 1.6, np.nan]})
    steal = request_steal(frame, trial, raw)
    assert steal[:2].to_numpy() == pytest.approx([0.05, 0.05])
    assert steal[2] == pytest.approx((5 * 0.6 + 4 * 0.05) / 9)
    assert np.isnan(steal[3])  # never answered
    latency = frame["done_s"] - frame["scheduled_s"]
    overall, slowest = tail_steal(latency, steal)
    assert slowest == pytest.approx(steal[2])
    assert overall == pytest.approx(steal[:3].mean())
    assert request_steal(frame, tmp_path / "trial-2", raw).isna().all()  # no samples there
    assert tail_steal(latency, pd.Series(np.nan, index=frame.index)) == (None, None)
