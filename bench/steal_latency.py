"""The host's steal beside a run's latency. Runs `harness run` with the arguments given after
`--`, reads the steal time in `/proc/stat` every 100 ms while it runs, then, for each trial's
requests, the steal share over each request's life against its latency (from its scheduled
time, as the run measures it).

It prints the run's mean steal, the steal the fastest half of the requests saw against the
slowest 5 %, and the correlation of latency with steal. The share is of all CPU time, idle
included, and the host can only take time the guest wants: a busy moment raises both a
request's latency and the steal counted, so this shows how closely they go together, not
which drives which (`host_steal.py` measures the host's part under a constant demand). A
read of /proc/stat took 0.04 ms of CPU here (6,000 timed): ten a second take 0.04 % of a
core from the run. The samples are kept in the run's folder (`steal.txt`), also when the
run fails.

    .venv/bin/python bench/steal_latency.py -- --stacks optimized --workload \\
        calibration_levels --rate 4 --duration 200 --trials 1 --out /tmp/steal-run
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from harness.measure.metrics import percentiles
from harness.measure.records import read_records

SAMPLE_S = 0.1


def sample_steal(stop: threading.Event, samples: list[tuple[float, float]]) -> None:
    """(unix time, steal share of all CPU time since the sample before), until `stop`."""
    before = None
    while not stop.is_set():
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:9]]
        now, steal, total = time.time(), fields[7], sum(fields)
        if before is not None and total > before[1]:
            samples.append((now, (steal - before[0]) / (total - before[1])))
        before = (steal, total)
        stop.wait(SAMPLE_S)


def out_dir(harness_args: list[str]) -> Path:
    for index, arg in enumerate(harness_args):
        if arg.startswith("--out="):
            return Path(arg.removeprefix("--out="))
        if arg == "--out" and index + 1 < len(harness_args):
            return Path(harness_args[index + 1])
    raise SystemExit("error: give `harness run` an --out DIR after --, to read its records")


def steal_between(samples: np.ndarray, start: float, end: float) -> float:
    """The mean steal share of the samples that cover [start, end]; NaN where none does."""
    covering = samples[(samples[:, 0] >= start) & (samples[:, 0] <= end + SAMPLE_S), 1]
    return float(covering.mean()) if covering.size else float("nan")


def report(records_path: Path, samples: np.ndarray) -> None:
    header, frame = read_records(records_path)
    anchor = header["anchor_unix_s"]
    failed = int((~frame["ok"]).sum())
    frame = frame[frame["ok"]]
    latency = (frame["done_s"] - frame["scheduled_s"]).to_numpy()
    steal = np.array([steal_between(samples, anchor + begun, anchor + done)
                      for begun, done in zip(frame["scheduled_s"], frame["done_s"], strict=True)])
    seen = ~np.isnan(steal)
    if seen.sum() < 20:
        print(f"{records_path}: too few requests with steal samples to compare")
        return
    latency, steal = latency[seen], steal[seen]
    fast = steal[latency <= np.percentile(latency, 50)]
    slow = steal[latency >= np.percentile(latency, 95)]
    dropped = f" ({failed} failed, left out)" if failed else ""
    # The run's own percentiles, over the successes that have steal samples.
    quantiles = percentiles(pd.Series(latency), "latency")
    print(f"{records_path.parent}: {len(latency)} requests{dropped}, P50 "
          f"{quantiles['latency_p50_s']:.3f} s, P99 {quantiles['latency_p99_s']:.3f} s; "
          f"steal over a request's life: fastest half {fast.mean():.1%}, slowest 5 % "
          f"{slow.mean():.1%}; correlation with latency {np.corrcoef(latency, steal)[0, 1]:.2f}")


def main() -> None:
    if "--" not in sys.argv:
        raise SystemExit("error: put `harness run`'s arguments after --, e.g. "
                         "steal_latency.py -- --stacks optimized --rate 4 --out DIR")
    harness_args = sys.argv[sys.argv.index("--") + 1:]
    out = out_dir(harness_args)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_steal, args=(stop, samples), daemon=True)
    sampler.start()
    harness = Path(sys.executable).parent / "harness"
    try:
        code = subprocess.call([str(harness), "run", *harness_args])
    finally:
        stop.set()
        sampler.join()
        table = np.array(samples).reshape(-1, 2)
        out.mkdir(parents=True, exist_ok=True)
        np.savetxt(out / "steal.txt", table, fmt="%.6f", header="unix_s steal_share")
    if len(table):
        print(f"steal over the run: {table[:, 1].mean():.1%} on average, at most "
              f"{table[:, 1].max():.0%} in {SAMPLE_S:g} s")
        for records in sorted(out.glob("*/trial-*/records.jsonl")):
            report(records, table)
    if code != 0:
        raise SystemExit(f"error: harness run exited {code}; what it measured is reported above")

if __name__ == "__main__":
    main()
