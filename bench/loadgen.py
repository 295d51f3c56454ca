"""Load-generator fidelity: does the open-loop replay send what the schedule says, on time?

Against a trivial fast upstream (nginx when installed, else `bench/fast_upstream.py`), each
target rate is replayed with constant arrivals, by one Locust process and by a master with 2
workers, exactly as `harness run` drives a stack. For each it prints achieved ÷ target rate
(successful requests finished in the measured window, per second) and send lag P50/P99/max
(`sent_s - scheduled_s`), all from the records by `harness.measure.metrics`.

    .venv/bin/python bench/loadgen.py [--rates 500,1000,2000,5000] [--duration 10]
        [--workers 0,2] [--senders 256] [--upstream auto|nginx|python] [--repeats N]
        [--keep DIR]

Goal: at 5,000 QPS on one process, ≥ 99.5 % of target and send-lag P99 ≤ 2 ms.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import product
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from tokenizers import Tokenizer

from harness.measure.loadgen import LoadJob, run_load
from harness.measure.metrics import Window, summarize
from harness.measure.records import account_for_schedule, read_records
from harness.workload.schedule import build_schedule, load_tokenizer
from harness.workload.spec import LengthSpec, WorkloadSpec
from stacks.launcher import health_ok
from stacks.process import free_port, spawn, stop_trees
from workloads.schedule import write_schedule

BENCH_DIR = Path(__file__).resolve().parent
WARMUP_S = 2.0
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix};
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    location / {{
      default_type application/json;
      return 200 '{{"usage":{{"prompt_tokens":8,"completion_tokens":4}}}}';
    }}
  }}
}}
"""


def start_upstream(kind: str, workdir: Path) -> tuple[str, list[subprocess.Popen[bytes]], str]:
    """(url, processes, description) of the upstream to measure against."""
    port = free_port()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if kind == "nginx" or (kind == "auto" and nginx):
        if nginx is None:
            raise SystemExit("nginx is not installed; use --upstream python")
        (workdir / "nginx.conf").write_text(NGINX_CONF.format(prefix=workdir, port=port))
        argv = [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf")]
        description = "nginx (1 worker, fixed JSON answer)"
    else:
        argv = [sys.executable, str(BENCH_DIR / "fast_upstream.py"), "--port", str(port)]
        description = "bench/fast_upstream.py (uvloop + httptools)"
    process = spawn(argv, workdir / "upstream.log")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not health_ok(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"upstream did not start; see {workdir / 'upstream.log'}")
        time.sleep(0.1)
    return url, [process], description


def measure(url: str, rate: float, duration_s: float, workers: int, senders: int,
            workdir: Path, tokenizer: Tokenizer) -> dict[str, float]:
    spec = WorkloadSpec(name="loadgen_bench", arrival="constant", rate_qps=rate,
                        duration_s=duration_s, warmup_s=WARMUP_S, max_in_flight=senders,
                        timeout_s=10, prompt_tokens=LengthSpec(mean=8),
                        output_tokens=LengthSpec(mean=4))
    schedule = build_schedule(spec, tokenizer)
    run_dir = workdir / f"rate-{rate:g}-workers-{workers}-senders-{senders}"
    write_schedule(schedule, run_dir / "schedule.jsonl")
    run_load(LoadJob(locustfile=BENCH_DIR.parent / "workloads" / "writing_assistant.py",
                     host=url, schedule=run_dir / "schedule.jsonl",
                     records=run_dir / "records.jsonl", log_dir=run_dir, model="bench",
                     workers=workers, senders=senders,
                     expected_s=WARMUP_S + duration_s + spec.timeout_s),
             lambda recorded: None)
    _, frame = read_records(run_dir / "records.jsonl")
    frame = account_for_schedule(frame, np.array([entry.offset_s for entry in schedule.entries]))
    return summarize(frame, Window(WARMUP_S, duration_s), slo_s=1.0, stream=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="500,1000,2000,5000")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--workers", default="0,2", help="0 = one process")
    parser.add_argument("--senders", default="256",
                        help="concurrent senders (max_in_flight); a list is interleaved per "
                             "repeat, so the configurations share the machine's moods")
    parser.add_argument("--upstream", choices=["auto", "nginx", "python"], default="auto")
    parser.add_argument("--keep", type=Path, help="keep schedules, records and logs here")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per configuration, each printed (these machines are noisy)")
    options = parser.parse_args()
    console = Console()
    tokenizer = load_tokenizer(WorkloadSpec(name="t", rate_qps=1, duration_s=1).tokenizer_path())
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as temp:
        workdir = options.keep or Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        url, upstream, description = start_upstream(options.upstream, workdir)
        table = Table(title=f"open-loop replay fidelity against {description}")
        for column in ("target QPS", "load generator", "senders", "achieved QPS",
                       "achieved ÷ target",
                       "send lag P50", "send lag P99", "send lag max", "success"):
            table.add_column(column, justify="right")
        try:
            for workers in [int(w) for w in options.workers.split(",")]:
                for rate, repeat, senders in product(
                        [float(r) for r in options.rates.split(",")], range(options.repeats),
                        [int(s) for s in options.senders.split(",")]):
                    figures = measure(url, rate, options.duration, workers, senders,
                                      workdir / f"repeat-{repeat}", tokenizer)
                    table.add_row(
                        f"{rate:,.0f}", "1 process" if workers == 0 else f"{workers} workers",
                        str(senders),
                        f"{figures['throughput_qps']:,.1f}",
                        f"{figures['throughput_qps'] / rate:.2%}",
                        f"{figures['send_lag_p50_s'] * 1000:.3f} ms",
                        f"{figures['send_lag_p99_s'] * 1000:.3f} ms",
                        f"{figures['send_lag_max_s'] * 1000:.1f} ms",
                        f"{figures['success_rate']:.4f}")
                    console.print(f"done: {rate:,.0f} QPS, workers={workers}")
        finally:
            stop_trees(upstream)
        console.print(table)


if __name__ == "__main__":
    main()
