"""The load generator: Locust replaying a schedule file, run as subprocesses.

Locust monkey-patches its whole process with gevent, so it never runs inside the harness: the
harness starts `python -m locust` (one process, or a master and N workers on this machine),
hands it the schedule file, and follows the records file it appends
(`harness.measure.follower`): the rows read feed the progress and, for a capacity probe, the
watch that may stop it early.

Locust is the measuring instrument, so it runs at real-time priority where the machine allows
(`raise_to_realtime`): with the engines busy on every core, a send that falls due otherwise
waits for a core. On 2 cores at 5 QPS, its send lag P99 fell from 34–44 ms to 0.0 ms.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import LoadError
from harness.measure.follower import RecordFollower
from stacks.launcher import on_cores
from stacks.process import free_port, spawn, stop_trees, tail

POLL_S = 0.5
# gevent's select backend sleeps to the microsecond (epoll: whole milliseconds), which is what
# keeps send lag far below a millisecond; select watches at most 1024 sockets, so it is used
# only while the senders' connections fit well inside that.
PRECISE_BACKEND_MAX_SENDERS = 512
START_ALLOWANCE_S = 60.0  # Locust start-up, worker connection and the anchor's lead
# SCHED_RR at 1, the lowest real-time priority: above every normal process (the engines, the
# balancer), below the kernel's own real-time threads. The kernel's real-time throttling (95 %
# of each second by default) keeps a saturated load generator from freezing the machine.
REALTIME_PRIORITY = 1
CAP_SYS_NICE = 23


@dataclass(frozen=True, slots=True)
class LoadJob:
    locustfile: Path
    host: str
    schedule: Path
    records: Path
    log_dir: Path
    model: str = ""
    workers: int = 0  # 0: one process; N: a master and N worker processes
    senders: int = 256  # the schedule's max_in_flight
    api_key_env: str = ""
    expected_s: float = 0.0  # last send offset + request timeout: how long it should take
    cores: str | None = None  # where every Locust process runs (`stacks.launcher.helper_cores`)
    stack: str = ""  # whose helper it is, for the error where taskset is missing
    master_host: str = "127.0.0.1"  # where the master listens and its workers reach it


def locust_argv(job: LoadJob, role: str, master_port: int = 0) -> list[str]:
    """argv of one Locust process; `role` is `single`, `master` or `worker`."""
    argv = [sys.executable, "-m", "locust", "-f", str(job.locustfile),
            "--schedule", str(job.schedule), "--loglevel", "WARNING"]
    if role == "worker":
        return [*argv, "--worker", "--master-host", job.master_host,
                "--master-port", str(master_port)]
    argv += ["--host", job.host, "--headless", "--records", str(job.records),
             "--exit-code-on-error", "0", "--only-summary"]
    if job.model:
        argv += ["--model", job.model]
    if job.api_key_env:
        argv += ["--api-key-env", job.api_key_env]
    if role == "master":
        argv += ["--master", "--master-bind-host", job.master_host,
                 "--master-bind-port", str(master_port), "--expect-workers", str(job.workers)]
    return argv


StopWhen = Callable[[list[list[Any]]], str | None]


def run_load(job: LoadJob, on_progress: Callable[[int], None],
             stop_when: StopWhen | None = None) -> str | None:
    """Run the schedule against `job.host` to the end; raise LoadError if Locust fails.

    `stop_when`, given the rows recorded since its last call at every poll, may end the run
    early by returning why (a capacity probe whose failure is already certain); that reason
    is returned, else None."""
    processes = start_locust(job)
    master = processes[0]
    follower = RecordFollower(job.records)
    limit_s = job.expected_s + START_ALLOWANCE_S
    deadline = time.monotonic() + limit_s
    log = job.log_dir / "locust.log"
    try:
        while (code := master.poll()) is None:
            rows = follower.new_rows()
            on_progress(follower.count)
            if stop_when is not None and (reason := stop_when(rows)) is not None:
                return reason
            if time.monotonic() > deadline:
                raise LoadError(f"the load generator ran past {limit_s:.0f} s; last lines of "
                                f"{log}:\n{tail(log)}")
            time.sleep(POLL_S)
        follower.new_rows()
        on_progress(follower.count)
        if code != 0:
            raise LoadError(f"the load generator exited with code {code}; last lines of "
                            f"{log}:\n{tail(log)}")
        return None
    finally:
        stop_trees(processes)


def locust_env(job: LoadJob) -> dict[str, str]:
    env = dict(os.environ)
    if job.senders <= PRECISE_BACKEND_MAX_SENDERS:
        env["GEVENT_BACKEND"] = "select"
    return env


def start_locust(job: LoadJob) -> list[subprocess.Popen[bytes]]:
    """The single process, or the master first and then its workers, each on `job.cores` and
    raised to real-time priority where the machine allows."""
    job.log_dir.mkdir(parents=True, exist_ok=True)
    env = locust_env(job)
    def placed(argv: list[str]) -> list[str]:
        return on_cores(argv, job.cores, job.stack)

    if job.workers == 0:
        processes = [spawn(placed(locust_argv(job, "single")), job.log_dir / "locust.log", env)]
    else:
        port = free_port()
        processes = [spawn(placed(locust_argv(job, "master", port)),
                           job.log_dir / "locust.log", env)]
        for index in range(job.workers):
            processes.append(spawn(placed(locust_argv(job, "worker", port)),
                                   job.log_dir / f"locust-worker-{index}.log", env))
    for process in processes:
        raise_to_realtime(process.pid)
    return processes


def realtime_allowed() -> bool:
    """Whether this process may raise others to real-time priority: CAP_SYS_NICE in its
    effective set (root has it, except in a container that drops it), or a real-time
    priority limit (RLIMIT_RTPRIO) of at least ours, which only covers its own children."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            effective = next(line for line in status if line.startswith("CapEff:"))
        if int(effective.split()[1], 16) >> CAP_SYS_NICE & 1:
            return True
    except (OSError, StopIteration):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
    return soft == resource.RLIM_INFINITY or soft >= REALTIME_PRIORITY


def raise_to_realtime(pid: int) -> bool:
    """Put a process on SCHED_RR (every thread it has; those it starts later inherit it);
    False where the machine does not allow it, and the process keeps its priority."""
    try:
        threads = [int(task) for task in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        threads = [pid]
    for thread in threads:
        try:
            os.sched_setscheduler(thread, os.SCHED_RR, os.sched_param(REALTIME_PRIORITY))
        except PermissionError:
            return False
        except ProcessLookupError:  # that thread is gone: the others still count
            continue
    return True
