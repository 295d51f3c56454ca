"""The host's steal beside a run's latency. Runs `harness run` with the arguments given after
`--`; every trial samples the host's steal through it (`harness.measure.host_steal`, kept as
the trial's `steal.csv`). Then, for each trial's requests, it sets the steal share over each
request's life against its latency (from its scheduled time, as the run measures it).

It prints the steal over each trial, the steal the fastest half of the requests saw against the
slowest 5 %, and the correlation of latency with steal. The share is of all CPU time, idle
included, and the host can only take time the guest wants: a busy moment raises both a
request's latency and the steal counted, so this shows how closely they go together, not
which drives which (`host_steal.py` measures the host's part under a constant demand).

    .venv/bin/python bench/steal_latency.py -- --stacks optimized --workload \\
        calibration_levels --rate 4 --duration 200 --trials 1 --out /tmp/steal-run
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from harness.measure.host_steal import read_steal, request_steal
from harness.measure.metrics import percentiles
from harness.measure.records import read_records


def out_dir(harness_args: list[str]) -> Path:
    for index, arg in enumerate(harness_args):
        if arg.startswith("--out="):
            return Path(arg.removeprefix("--out="))
        if arg == "--out" and index + 1 < len(harness_args):
            return Path(harness_args[index + 1])
    raise SystemExit("error: give `harness run` an --out DIR after --, to read its records")


def report(records_path: Path) -> None:
    trial_dir = records_path.parent
    samples = read_steal(trial_dir)
    if samples is None:
        print(f"{trial_dir}: no steal samples (this kernel reports none)")
        return
    frame = read_records(records_path)[1]
    failed = int((~frame["ok"]).sum())
    frame = frame[frame["ok"]]
    latency = (frame["done_s"] - frame["scheduled_s"]).to_numpy()
    steal = request_steal(frame, trial_dir, records_path).to_numpy()
    seen = ~np.isnan(steal)
    if seen.sum() < 20:
        print(f"{trial_dir}: too few requests with steal samples to compare")
        return
    latency, steal = latency[seen], steal[seen]
    fast = steal[latency <= np.percentile(latency, 50)]
    slow = steal[latency >= np.percentile(latency, 95)]
    dropped = f" ({failed} failed, left out)" if failed else ""
    # The run's own percentiles, over the successes that have steal samples.
    quantiles = percentiles(pd.Series(latency), "latency")
    print(f"{trial_dir}: steal {samples['steal_share'].mean():.1%} on average, at most "
          f"{samples['steal_share'].max():.0%} in a sample; {len(latency)} requests{dropped}, "
          f"P50 {quantiles['latency_p50_s']:.3f} s, P99 {quantiles['latency_p99_s']:.3f} s; "
          f"steal over a request's life: fastest half {fast.mean():.1%}, slowest 5 % "
          f"{slow.mean():.1%}; correlation with latency {np.corrcoef(latency, steal)[0, 1]:.2f}")


def main() -> None:
    if "--" not in sys.argv:
        raise SystemExit("error: put `harness run`'s arguments after --, e.g. "
                         "steal_latency.py -- --stacks optimized --rate 4 --out DIR")
    harness_args = sys.argv[sys.argv.index("--") + 1:]
    out = out_dir(harness_args)
    harness = Path(sys.executable).parent / "harness"
    code = subprocess.call([str(harness), "run", *harness_args])
    for records in sorted(out.glob("*/trial-*/records.jsonl")):
        report(records)
    if code != 0:
        raise SystemExit(f"error: harness run exited {code}; what it measured is reported above")


if __name__ == "__main__":
    main()
