"""The host's steal time through every trial: the share of CPU time the kernel counted as
steal (`/proc/stat`), every 100 ms, from before the stack starts until after it stops.

On a shared virtual machine the host runs other guests on the same physical cores; the
guest's kernel counts the time it was ready to run and was not as steal. The machine's
yardsticks (`machine_speed`) are taken between trials; steal comes in bursts of a fraction of
a second inside them (`bench/host_steal.py`), and a burst is what puts a request in a P99. So
each trial folder keeps `steal.csv`, one line a sample, written as taken (a run killed midway
keeps what it sampled): `unix_s` (when taken) and `steal_share` (steal ÷ all CPU time, idle
included, since the sample before; over 2 cores a sample holds about 20 jiffies, so each share
is good to about ±5 %). A read of /proc/stat costs 0.04 ms of CPU, so ten a second take 0.04 %
of a core from the run.

The share is of all CPU time: the host takes only time the guest wants, so a busy moment
raises both a request's latency and the steal counted there (`bench/host_steal.py` measures
the host's part under a constant demand)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from harness.measure.records import read_records

STEAL_FILE = "steal.csv"  # in each trial's folder
SAMPLE_S = 0.1
STAT = Path("/proc/stat")
STEAL_COLUMN = 8  # of the "cpu" line: user nice system idle iowait irq softirq steal


def steal_and_total(stat: Path = STAT) -> tuple[int, int] | None:
    """(steal, all) jiffies over every core since boot; None where the kernel reports no
    steal (not Linux, or one older than 2.6.11)."""
    try:
        with stat.open() as lines:
            fields = lines.readline().split()
    except OSError:
        return None
    if len(fields) <= STEAL_COLUMN or fields[0] != "cpu":
        return None
    counts = [int(value) for value in fields[1:STEAL_COLUMN + 1]]
    return counts[-1], sum(counts)


def _sample(path: Path, stop: threading.Event, stat: Path, every_s: float) -> None:
    before = steal_and_total(stat)
    if before is None:
        return
    with path.open("w", buffering=1) as out:  # a line each sample: a kill loses at most one
        out.write("unix_s,steal_share\n")
        while not stop.wait(every_s):
            now = steal_and_total(stat)
            if now is None:
                return
            if now[1] > before[1]:
                out.write(f"{time.time():.3f},{(now[0] - before[0]) / (now[1] - before[1]):.4f}\n")
                before = now


@contextmanager
def steal_sampled(trial_dir: Path, stat: Path = STAT,
                  every_s: float = SAMPLE_S) -> Iterator[None]:
    """Sample the host's steal into `trial_dir/steal.csv` while the block runs; nothing is
    written where the kernel reports no steal."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(trial_dir / STEAL_FILE, stop, stat,
                                                     every_s), name="steal", daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()


def read_steal(trial_dir: Path) -> pd.DataFrame | None:
    """A trial's samples (`unix_s`, `steal_share`); None where it has none (a run from before
    they were taken, or a kernel without steal) or the file is unreadable."""
    try:
        samples = pd.read_csv(trial_dir / STEAL_FILE)
    except (OSError, ValueError):
        return None
    if list(samples.columns) != ["unix_s", "steal_share"] or samples.empty:
        return None
    return samples


def steal_over(samples: pd.DataFrame, starts_unix: np.ndarray,
               ends_unix: np.ndarray) -> np.ndarray:
    """For each span [start, end], the mean share of the samples covering it (a sample covers
    the `SAMPLE_S` before it was taken); NaN where no sample does or the span has no end."""
    taken = samples["unix_s"].to_numpy()
    share = np.concatenate([[0.0], np.cumsum(samples["steal_share"].to_numpy())])
    first = np.searchsorted(taken, starts_unix, side="left")
    last = np.searchsorted(taken, ends_unix + SAMPLE_S, side="right")
    counts = last - first
    spans = ~(np.isnan(starts_unix) | np.isnan(ends_unix))  # an unanswered request has no end
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spans & (counts > 0), (share[last] - share[first]) / counts, np.nan)


def request_steal(frame: pd.DataFrame, trial_dir: Path, raw_records: Path) -> pd.Series:
    """Each request's steal share over its life (scheduled → done, on the clock of the records
    at `raw_records`, whose header holds their anchor); NaN where the trial has no samples or
    the request no answer."""
    samples = read_steal(trial_dir)
    if samples is None or not raw_records.is_file():
        return pd.Series(np.nan, index=frame.index)
    anchor = float(read_records(raw_records)[0]["anchor_unix_s"])
    return pd.Series(steal_over(samples, anchor + frame["scheduled_s"].to_numpy(),
                                anchor + frame["done_s"].to_numpy()), index=frame.index)


def tail_steal(latency: pd.Series, steal: pd.Series,
               quantile: float = 0.99) -> tuple[float | None, float | None]:
    """The mean steal over the lives of all requests with samples, and over those at or above
    the `quantile` of their latency (the requests that set it; one at least); Nones where no
    request has samples."""
    known = steal.notna()
    if not known.any():
        return None, None
    latency, steal = latency[known], steal[known]
    slowest = steal[latency >= latency.quantile(quantile)]
    return float(steal.mean()), float(slowest.mean())
