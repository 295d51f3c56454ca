"""The host through every trial, every 100 ms, from before the stack starts until after it
stops: how much CPU time it took (steal), how fast a core ran while ours, and how much CPU
time processes outside the run took.

On a shared virtual machine the host runs other guests on the same physical cores. It can
take a core outright: the guest's kernel counts the time it was ready to run and was not as
steal (`/proc/stat`). It can also leave the core ours and make it slower, through a busy
sibling hyper-thread or cache, which no counter shows. The machine's yardsticks
(`machine_speed`) are taken between trials; both come in bursts of a fraction of a second to
seconds inside them (`bench/host_steal.py`), and a burst is what puts a request in a P99.

So each trial folder keeps `host.csv`, one line a sample, written as taken (a run killed
midway keeps what it sampled):

- `unix_s`: when taken;
- `steal_share`: steal ÷ all CPU time, idle included, since the sample before (over 2 cores
  a sample holds about 20 jiffies, so each share is good to about ±5 %);
- `busy_share`: the guest's own work ÷ all CPU time; steal ÷ (busy + steal) is the part of
  the time the guest wanted to run that the host took;
- `loop_speed`: a fixed Python loop of `PROBE_STEPS` steps, in million steps per second of
  this thread's own CPU time, so that waiting for a core busy with the stack does not count,
  only how fast the core ran once it was ours: one reading a sample, on whichever core the
  sampler ran, standing for the whole 100 ms;
- `outside_share`, once a second (empty between): the CPU time of the processes outside the
  run ÷ all CPU time since the scan before (`outside_cpu`; a lower bound, as a process that
  lives between two scans is not seen): our own machine's noise, apart from the host's.

The cost: a read of /proc/stat takes 0.04 ms of CPU and the loop about 0.25 ms, ten times a
second, and a scan of /proc about 2 ms once a second: 0.5 % of a core from the run. The
shares are of all CPU time: the host takes only time the guest wants, so a busy moment
raises both a request's latency and the steal counted there (`bench/host_steal.py` measures
the host's part under a constant demand)."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from harness.measure.outside_cpu import PROC, outside_ticks, process_times, ticks_since
from workloads.records import read_record_header

HOST_FILE = "host.csv"  # in each trial's folder
STEAL_ONLY_FILE = "steal.csv"  # the first timelines' name: they held steal alone
SAMPLE_S = 0.1
PROBE_STEPS = 5_000  # about 0.25 ms on this machine's cores
OUTSIDE_EVERY = 10  # samples between scans of /proc: one costs about 2 ms (70 processes)
STAT = Path("/proc/stat")
STEAL_COLUMN = 8  # of the "cpu" line: user nice system idle iowait irq softirq steal


class CpuTimes(NamedTuple):
    """Jiffies over every core since boot."""

    steal: int
    busy: int  # user, nice, system, irq and softirq: the guest's own work
    total: int  # idle and iowait included


def cpu_times(stat: Path = STAT) -> CpuTimes | None:
    """The first line of /proc/stat; None where the kernel reports no steal (not Linux, or
    one older than 2.6.11)."""
    try:
        with stat.open() as lines:
            fields = lines.readline().split()
    except OSError:
        return None
    if len(fields) <= STEAL_COLUMN or fields[0] != "cpu":
        return None
    counts = [int(value) for value in fields[1:STEAL_COLUMN + 1]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = counts
    return CpuTimes(steal, user + nice + system + irq + softirq, sum(counts))


def loop_speed(steps: int = PROBE_STEPS) -> float:
    """Million loop steps per second of this thread's CPU time; NaN where the clock did not
    move (a coarse thread clock)."""
    start = time.thread_time()
    total = 0
    for step in range(steps):
        total += step * step
    spent = time.thread_time() - start
    return steps / spent / 1e6 if spent > 0 else math.nan


class Outside:
    """The CPU share of the processes outside the run (`outside_cpu`), scanned every
    `OUTSIDE_EVERY` samples; NaN where /proc cannot be scanned."""

    def __init__(self, proc: Path, root: int, total: int) -> None:
        self.proc, self.root = proc, root
        self.times = self._scan()
        self.total = total
        self.samples = 0

    def _scan(self) -> dict[int, tuple[int, int]] | None:
        try:
            return process_times(self.proc)
        except OSError:  # no /proc here: steal and the loop are sampled all the same
            return None

    def share(self, total: int) -> float:
        """Their share of all CPU time since the last scan, on every `OUTSIDE_EVERY`th call;
        NaN on the others."""
        self.samples += 1
        if self.samples % OUTSIDE_EVERY or total <= self.total or self.times is None:
            return math.nan
        times = self._scan()
        if times is None:
            return math.nan
        share = ticks_since(outside_ticks(times, self.root), self.times) / (total - self.total)
        self.times, self.total = times, total
        return share


def _sample(path: Path, stop: threading.Event, stat: Path, proc: Path,
            every_s: float) -> None:
    before = cpu_times(stat)
    if before is None:
        return
    outside = Outside(proc, os.getpid(), before.total)
    with path.open("w", buffering=1) as out:  # a line each sample: a kill loses at most one
        out.write("unix_s,steal_share,busy_share,loop_speed,outside_share\n")
        while not stop.wait(every_s):
            speed = loop_speed()
            now = cpu_times(stat)
            if now is None:
                return
            if now.total > before.total:
                total = now.total - before.total
                others = outside.share(now.total)
                out.write(f"{time.time():.3f},{(now.steal - before.steal) / total:.4f},"
                          f"{(now.busy - before.busy) / total:.4f},{speed:.3f},"
                          f"{'' if math.isnan(others) else f'{others:.4f}'}\n")
                before = now


@contextmanager
def host_sampled(trial_dir: Path, stat: Path = STAT, proc: Path = PROC,
                 every_s: float = SAMPLE_S) -> Iterator[None]:
    """Sample the host into `trial_dir/host.csv` while the block runs; nothing is written
    where the kernel reports no steal."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(trial_dir / HOST_FILE, stop, stat, proc,
                                                     every_s), name="host", daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()


def read_host(trial_dir: Path) -> pd.DataFrame | None:
    """A trial's samples (the columns above; all but `unix_s` and `steal_share` may be
    missing, as in runs that took steal alone); None where it has none (a run from before they were
    taken, or a kernel without steal) or the file is unreadable."""
    path = trial_dir / HOST_FILE
    if not path.is_file():
        path = trial_dir / STEAL_ONLY_FILE
    try:
        samples = pd.read_csv(path)
    except (OSError, ValueError):
        return None
    if not {"unix_s", "steal_share"} <= set(samples.columns) or samples.empty:
        return None
    return samples


def mean_over(samples: pd.DataFrame, column: str, starts_unix: np.ndarray,
              ends_unix: np.ndarray, covers_s: float = SAMPLE_S) -> np.ndarray:
    """For each span [start, end], the mean of `column` over the samples covering it (a
    sample covers the `covers_s` before it was taken; one without a value, none); NaN where
    no sample does or the span has no end."""
    taken = samples["unix_s"].to_numpy()
    values = samples[column].to_numpy(dtype=np.float64)
    known = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(known, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(known)])
    first = np.searchsorted(taken, starts_unix, side="left")
    last = np.searchsorted(taken, ends_unix + covers_s, side="right")
    covered = counts[last] - counts[first]
    spans = ~(np.isnan(starts_unix) | np.isnan(ends_unix))  # an unanswered request has no end
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spans & (covered > 0), (sums[last] - sums[first]) / covered, np.nan)


def request_host(frame: pd.DataFrame, trial_dir: Path, raw_records: Path) -> pd.DataFrame:
    """For each request, over its life (scheduled → done, on the clock of the records at
    `raw_records`, whose header holds their anchor): `steal`, the host's mean steal share;
    `core_speed`, the loop's mean speed ÷ its median through the trial (1: as usual; 0.5:
    the cores ran at half their usual speed); `outside`, the share of CPU time outside the
    run over the seconds it lived in. NaN where the trial has none of them or the request no
    answer."""
    host = pd.DataFrame(np.nan, index=frame.index, columns=["steal", "core_speed", "outside"])
    samples = read_host(trial_dir)
    if samples is None or not raw_records.is_file():
        return host
    anchor = float(read_record_header(raw_records)["anchor_unix_s"])
    starts = anchor + frame["scheduled_s"].to_numpy(dtype=np.float64)
    ends = anchor + frame["done_s"].to_numpy(dtype=np.float64)
    host["steal"] = mean_over(samples, "steal_share", starts, ends)
    if "loop_speed" in samples:
        speed = samples["loop_speed"]
        host["core_speed"] = mean_over(samples.assign(relative=speed / speed.median()),
                                       "relative", starts, ends)
    if "outside_share" in samples:
        host["outside"] = mean_over(samples, "outside_share", starts, ends,
                                    covers_s=OUTSIDE_EVERY * SAMPLE_S)
    return host


def tail_means(latency: pd.Series, values: pd.Series,
               quantile: float = 0.99) -> tuple[float | None, float | None]:
    """The mean of `values` over all requests that have one, and over those of the requests
    at or above the `quantile` of every request's latency (those that set it) that have one;
    a None where none has."""
    slowest = values[latency >= latency.quantile(quantile)]
    return mean_or_none(values), mean_or_none(slowest)


def mean_or_none(values: pd.Series) -> float | None:
    return None if values.isna().all() else float(values.mean())
