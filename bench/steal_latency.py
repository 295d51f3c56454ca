"""The host's steal, the cores' speed and the CPU taken outside the run, beside a run's
latency. Runs `harness run` with the arguments given after `--`; every trial samples them
through it (`harness.measure.host_timeline`, kept as the trial's `host.csv`). Then, for each
trial's requests, it sets each over the request's life against its latency (from its
scheduled time, as the run measures it).

It prints the steal over each trial, each figure over the lives of the fastest half of the
requests against the slowest 5 %, and the correlation of latency with each. The share
is of all CPU time, idle included, and the host can only take time the guest wants: a busy
moment raises both a request's latency and the steal counted, so this shows how closely they
go together, not which drives which (`host_steal.py` measures the host's part under a
constant demand).

    .venv/bin/python bench/steal_latency.py -- --stacks optimized --workload \\
        calibration_levels --rate 4 --duration 200 --trials 1 --out /tmp/steal-run
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.measure.host_timeline import read_host, request_host
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
    samples = read_host(trial_dir)
    if samples is None:
        print(f"{trial_dir}: no host samples (this kernel reports no steal)")
        return
    frame = read_records(records_path)[1]
    failed = int((~frame["ok"]).sum())
    frame = frame[frame["ok"]]
    host = request_host(frame, trial_dir, records_path).assign(
        latency=frame["done_s"] - frame["scheduled_s"]).dropna(subset=["steal"])
    if len(host) < 20:
        print(f"{trial_dir}: too few requests with host samples to compare")
        return
    fast = host[host["latency"] <= host["latency"].quantile(0.5)]
    slow = host[host["latency"] >= host["latency"].quantile(0.95)]
    dropped = f" ({failed} failed, left out)" if failed else ""
    # The run's own percentiles, over the successes that have samples.
    quantiles = percentiles(host["latency"], "latency")
    print(f"{trial_dir}: steal {samples['steal_share'].mean():.1%} on average, at most "
          f"{samples['steal_share'].max():.0%} in a sample; {len(host)} requests{dropped}, "
          f"P50 {quantiles['latency_p50_s']:.3f} s, P99 {quantiles['latency_p99_s']:.3f} s")
    for column, form in (("steal", ".1%"), ("core_speed", ".2f"), ("outside", ".1%")):
        if host[column].notna().sum() > 2:
            print(f"  {column} over a request's life: fastest half {fast[column].mean():{form}}, "
                  f"slowest 5 % {slow[column].mean():{form}}; correlation with latency "
                  f"{host['latency'].corr(host[column]):.2f}")


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
