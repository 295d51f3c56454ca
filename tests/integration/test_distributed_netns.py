"""Distributed load across hosts, for real: Locust's master and each worker in a network
namespace of its own, joined by a bridge with addresses this test makes (the traffic never
leaves the machine), against a test-double endpoint in the machine's own namespace.

- The namespaces' run records what one process records on the same schedule: every request,
  and P50 and P99 within 5 %.
- A worker whose clock is planted a second behind (Debian's `faketime`) shows that second as
  send lag on its requests, and only on its own.

Skipped, saying why, where network namespaces cannot be made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest

from harness.measure.loadgen import LoadJob, locust_argv, locust_env
from harness.measure.records import read_records
from harness.workload.schedule import build_schedule, load_tokenizer
from harness.workload.spec import LengthSpec, WorkloadSpec
from stacks.process import free_port, spawn, stop_trees
from tests.conftest import FAKE_SERVER, wait_healthy
from workloads.schedule import write_schedule

LOCUSTFILE = Path(__file__).resolve().parents[2] / "workloads" / "writing_assistant.py"
SKEW_S = 1


@dataclass(frozen=True)
class Hosts:
    server_ip: str  # on the bridge, in the machine's own namespace
    namespaces: dict[str, tuple[str, str]]  # role -> (namespace, its address)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """A bridge and three namespaces on it (master, worker 0, worker 1), removed afterwards."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (Debian's iproute2)")
    tag = str(os.getpid() % 10000)
    subnet = f"10.213.{os.getpid() % 200 + 20}"
    bridge = f"shbr{tag}"
    try:
        ip("link", "add", bridge, "type", "bridge")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"network namespaces are not permitted here: {exc.stderr.strip()}")
    made: list[str] = []
    try:
        ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        namespaces = {}
        for k, role in enumerate(("m", "w0", "w1")):
            namespace, outside, inside = f"sh{role}{tag}", f"v{role}{tag}", f"p{role}{tag}"
            ip("netns", "add", namespace)
            made.append(namespace)
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", namespace)
            ip("link", "set", outside, "master", bridge)
            ip("link", "set", outside, "up")
            address = f"{subnet}.{k + 2}"
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inside)
            ip("-n", namespace, "link", "set", inside, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            namespaces[role] = (namespace, address)
        yield Hosts(f"{subnet}.1", namespaces)
    finally:
        for namespace in made:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=30)


@pytest.fixture
def endpoint(hosts: Hosts, tmp_path: Path) -> Iterator[str]:
    """A test-double endpoint answering each request in 200 ms: below its capacity."""
    port = free_port()
    process = spawn([*FAKE_SERVER, "--host", hosts.server_ip, "--port", str(port),
                     "--latency-ms", "200"], tmp_path / "fake.log")
    try:
        url = f"http://{hosts.server_ip}:{port}"
        wait_healthy(url, process)
        yield url
    finally:
        stop_trees([process], grace_s=5)


def schedule_job(url: str, tmp_path: Path) -> tuple[LoadJob, int]:
    spec = WorkloadSpec(name="netns_test", arrival="constant", rate_qps=20, duration_s=15,
                        warmup_s=0, timeout_s=5, max_in_flight=32,
                        prompt_tokens=LengthSpec(mean=8), output_tokens=LengthSpec(mean=4))
    schedule = build_schedule(spec, load_tokenizer(spec.tokenizer_path()))
    write_schedule(schedule, tmp_path / "schedule.jsonl")
    job = LoadJob(locustfile=LOCUSTFILE, host=url, schedule=tmp_path / "schedule.jsonl",
                  records=tmp_path / "records.jsonl", log_dir=tmp_path, model="fake",
                  senders=spec.max_in_flight)
    return job, len(schedule.entries)


def in_namespace(hosts: Hosts, role: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", hosts.namespaces[role][0], *argv]


def replay(job: LoadJob, hosts: Hosts, workers: int, skewed: bool = False) -> pd.DataFrame:
    """Run the schedule: one process (workers=0) or a master and two workers, each in its
    namespace; worker 1's clock SKEW_S behind when `skewed`. The records, by index."""
    job.log_dir.mkdir(parents=True, exist_ok=True)
    env = locust_env(job) | {"FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    if workers == 0:
        argvs = [("locust", in_namespace(hosts, "m", locust_argv(job, "single")))]
    else:
        port = free_port()
        job = replace(job, workers=workers, master_host=hosts.namespaces["m"][1])
        argvs = [("locust", in_namespace(hosts, "m", locust_argv(job, "master", port)))]
        for k in range(workers):
            worker = locust_argv(job, "worker", port)
            if skewed and k == 1:
                worker = ["faketime", "-f", f"-{SKEW_S}", *worker]
            argvs.append((f"locust-worker-{k}", in_namespace(hosts, f"w{k}", worker)))
    processes = [spawn(argv, job.log_dir / f"{name}.log", env) for name, argv in argvs]
    try:
        processes[0].wait(timeout=90)
        assert processes[0].returncode == 0, (job.log_dir / "locust.log").read_text()[-2000:]
    finally:
        stop_trees(processes, grace_s=5)
    _, frame = read_records(job.records)
    return frame.sort_values("index", ignore_index=True)


def latency_percentiles(frame: pd.DataFrame) -> pd.Series:
    return (frame["done_s"] - frame["scheduled_s"]).quantile([0.5, 0.99])


def test_namespaces_record_what_one_process_records(hosts: Hosts, endpoint: str,
                                                    tmp_path: Path) -> None:
    job, requests = schedule_job(endpoint, tmp_path)
    single = replay(replace(job, log_dir=tmp_path / "single",
                            records=tmp_path / "single.jsonl"), hosts, workers=0)
    spread = replay(replace(job, log_dir=tmp_path / "spread",
                            records=tmp_path / "spread.jsonl"), hosts, workers=2)
    for frame in (single, spread):
        assert len(frame) == requests
        assert frame["ok"].all()
        assert list(frame["index"]) == list(range(requests))
    one, many = latency_percentiles(single), latency_percentiles(spread)
    assert ((many - one).abs() / one <= 0.05).all(), (one.to_dict(), many.to_dict())
    workers_logs = "".join(p.read_text() for p in (tmp_path / "spread").glob("*worker*.log"))
    assert workers_logs.count("clock offset to the master") == 2


def test_a_skewed_worker_clock_shows_up_as_send_lag(hosts: Hosts, endpoint: str,
                                                    tmp_path: Path) -> None:
    if shutil.which("faketime") is None:
        pytest.skip("no `faketime` (Debian's faketime, installed by `make test`)")
    job, requests = schedule_job(endpoint, tmp_path)
    started = time.monotonic()
    frame = replay(job, hosts, workers=2, skewed=True)
    assert len(frame) == requests
    assert frame["ok"].all()
    lag = frame["sent_s"] - frame["scheduled_s"]
    by_share = lag.groupby(frame["index"] % 2).median()  # worker k of 2 sends k, k+2, ...
    late, on_time = by_share.max(), by_share.min()
    assert abs(late - SKEW_S) < 0.1, by_share.to_dict()
    assert on_time < 0.05, by_share.to_dict()
    assert time.monotonic() - started < 90
