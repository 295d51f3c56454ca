"""The balancer alone under replica faults, at scale, and under membership changes.

    .venv/bin/python bench/balancer_faults.py [--rate 1000] [--duration 35] [--replicas 3] \
        [--kill-every 5] [--down-for 2] [--latency-ms 20] [--keep DIR]

Replicas are `bench/fast_upstream.py` processes answering after `--latency-ms`. Locust replays
one constant-rate schedule (2 s of warm-up, then `--duration` s measured) against our balancer
in three phases, one after the other on the same machine:

1. diy: the diy stack's balancer settings (plain round-robin);
2. optimized: the optimized stack's balancer settings, read from its stack.yaml;

   in both, one replica (in turn) is SIGKILLed every `--kill-every` s and started again on its
   port `--down-for` s later, as the supervisor does;
3. membership: the optimized settings, no kill; every `--kill-every` s a new replica is started
   and added, the oldest drained, stopped once drained, and removed (the admin interface).

Prints, per phase: requests, success rate and its exact one-sided 95 % lower bound, failures by
class, retries and ejections. Goals: the optimized lower bound ≥ 99.99 % (which takes ≥ 30,000
requests with no failure: the default is 35,000), and no failed request in the membership
phase. Every process it starts is stopped on the way out.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from harness.measure.loadgen import LoadJob, run_load
from harness.measure.metrics import Window, summarize
from harness.measure.records import account_for_schedule, read_records
from harness.workload.schedule import build_schedule, load_tokenizer
from harness.workload.spec import LengthSpec, WorkloadSpec
from stacks.balancer.admin_client import BalancerAdmin
from stacks.balancer.command import balancer_argv
from stacks.launcher import Member, health_ok
from stacks.load import sum_samples
from stacks.process import free_port, spawn, stop_trees
from stacks.spec import StackSpec, load_local_stack_spec
from workloads.schedule import write_schedule

BENCH_DIR = Path(__file__).resolve().parent
WARMUP_S = 2.0


def wait_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while not health_ok(url):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{url} did not start; see {log}")
        time.sleep(0.02)


class Fleet:
    """Fast upstreams by name, each restartable on its port; every process stopped at the end."""

    def __init__(self, workdir: Path, latency_ms: float) -> None:
        self.workdir = workdir
        self.latency_ms = latency_ms
        self.members: dict[str, Member] = {}
        self.stopped: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, port: int | None = None) -> Member:
        port = port or free_port()
        argv = [sys.executable, str(BENCH_DIR / "fast_upstream.py"),
                "--port", str(port), "--latency-ms", str(self.latency_ms)]
        log = self.workdir / f"{name}.log"
        member = Member(name, "127.0.0.1", port, log, spawn(argv, log), argv)
        wait_up(member.url, member.process, log)
        self.members[name] = member
        return member

    def kill(self, name: str) -> None:
        member = self.members[name]
        stop_trees([member.process], grace_s=0)
        self.stopped.append(member.process)

    def close(self) -> None:
        stop_trees([m.process for m in self.members.values()] + self.stopped, grace_s=2)


def balancer(spec: StackSpec, fleet: Fleet, workdir: Path, phase: str) -> \
        tuple[subprocess.Popen[bytes], str, str]:
    port, admin_port = free_port(), free_port()
    argv = balancer_argv(spec, list(fleet.members.values()), port, admin_port,
                         workdir / f"{phase}-balancer-events.jsonl")
    process = spawn(argv, workdir / f"{phase}-balancer.log")
    url = f"http://127.0.0.1:{port}"
    wait_up(url, process, workdir / f"{phase}-balancer.log")
    return process, url, f"http://127.0.0.1:{admin_port}"


def kills(fleet: Fleet, every_s: float, down_s: float) -> Callable[[threading.Event], None]:
    def act(stop: threading.Event) -> None:
        names, turn = list(fleet.members), 0
        while not stop.wait(every_s):
            name = names[turn % len(names)]
            port = fleet.members[name].port
            fleet.kill(name)
            if stop.wait(down_s):
                return
            fleet.start(name, port)
            turn += 1
    return act


def membership_changes(fleet: Fleet, admin_url: str, every_s: float) -> \
        Callable[[threading.Event], None]:
    def act(stop: threading.Event) -> None:
        with BalancerAdmin(admin_url) as admin:
            serial = len(fleet.members)
            while not stop.wait(every_s):
                new = fleet.start(f"replica-{serial}")
                serial += 1
                admin.add(new.name, new.url)
                oldest = next(iter(admin.replicas()))
                admin.drain(oldest)
                fleet.kill(oldest)
                del fleet.members[oldest]
                admin.remove(oldest)
    return act


def phase(name: str, spec: StackSpec, options: argparse.Namespace, workdir: Path,
          schedule: Path, offsets: np.ndarray,
          during: Callable[[Fleet, str], Callable[[threading.Event], None]]) -> dict[str, Any]:
    fleet = Fleet(workdir / name, options.latency_ms)
    (workdir / name).mkdir(parents=True)
    processes = []
    stop = threading.Event()
    try:
        for index in range(options.replicas):
            fleet.start(f"replica-{index}")
        process, url, admin_url = balancer(spec, fleet, workdir, name)
        processes.append(process)
        actor = threading.Thread(target=during(fleet, admin_url), args=(stop,), daemon=True)
        actor.start()
        records = workdir / name / "records.jsonl"
        run_load(LoadJob(locustfile=BENCH_DIR.parent / "workloads" / "writing_assistant.py",
                         host=url, schedule=schedule, records=records, log_dir=workdir / name,
                         model="bench", senders=512,
                         expected_s=WARMUP_S + options.duration + 10), lambda recorded: None)
        stop.set()
        actor.join(timeout=30)
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
    finally:
        stop.set()
        stop_trees(processes)
        fleet.close()
    _, frame = read_records(records)
    figures = summarize(account_for_schedule(frame, offsets), Window(WARMUP_S, options.duration),
                        slo_s=1.0, stream=False)
    figures["retries"] = sum_samples(metrics, frozenset({"balancer_retries_total"})) or 0.0
    figures["ejections"] = sum_samples(metrics, frozenset({"balancer_ejections_total"})) or 0.0
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=35.0, help="measured seconds")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--down-for", type=float, default=2.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--keep", type=Path, help="keep schedules, records and logs here")
    options = parser.parse_args()
    console = Console()
    diy, optimized = load_local_stack_spec("diy"), load_local_stack_spec("optimized")
    spec = WorkloadSpec(name="balancer_faults", arrival="constant", rate_qps=options.rate,
                        duration_s=options.duration, warmup_s=WARMUP_S, max_in_flight=512,
                        timeout_s=10, prompt_tokens=LengthSpec(mean=8),
                        output_tokens=LengthSpec(mean=4))
    built = build_schedule(spec, load_tokenizer(spec.tokenizer_path()))
    offsets = np.array([entry.offset_s for entry in built.entries])
    killing = lambda fleet, admin: kills(fleet, options.kill_every, options.down_for)  # noqa: E731
    changing = lambda fleet, admin: membership_changes(fleet, admin, options.kill_every)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="balancer-faults-") as temp:
        workdir = options.keep or Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        schedule = workdir / "schedule.jsonl"
        write_schedule(built, schedule)
        results = {}
        for name, stack, during in (("diy", diy, killing), ("optimized", optimized, killing),
                                    ("membership", optimized, changing)):
            results[name] = phase(name, stack, options, workdir, schedule, offsets, during)
            console.print(f"done: {name}")
    table = Table(title=f"balancer alone: {options.rate:,.0f} QPS for {options.duration:g} s, "
                        f"{options.replicas} replicas answering in {options.latency_ms:g} ms")
    for column in ("phase", "requests", "success", "95% lower bound", "failures by class",
                   "retries", "ejections"):
        table.add_column(column, justify="left" if column in ("phase", "failures by class")
                         else "right")
    for name, figures in results.items():
        errors = ", ".join(f"{count:,} {error}" for error, count in figures["errors"].items())
        table.add_row(name, f"{figures['requests']:,}", f"{figures['success_rate']:.4%}",
                      f"{figures['success_rate_low']:.4%}", errors or "none",
                      f"{figures['retries']:,.0f}", f"{figures['ejections']:,.0f}")
    console.print(table)
    what = (f"one replica SIGKILLed every {options.kill_every:g} s, back {options.down_for:g} s "
            f"later (diy, optimized); membership: add, drain, remove every "
            f"{options.kill_every:g} s")
    console.print(what)
    low = results["optimized"]["success_rate_low"]
    console.print(f"optimized lower bound {low:.4%} (goal ≥ 99.99%): "
                  f"{'met' if low >= 0.9999 else 'not met'}; membership failures: "
                  f"{results['membership']['failed_requests']} (goal 0); "
                  f"diy ÷ optimized failure count: {results['diy']['failed_requests']:,} ÷ "
                  f"{results['optimized']['failed_requests']:,}")


if __name__ == "__main__":
    main()
