"""The load generator's real-time priority: granted where the machine allows it, with every
thread the process has; refused without error elsewhere, the process left as it was. And its
place: every Locust process on the cores it is given."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.measure import loadgen
from harness.measure.environment import capture_environment
from harness.measure.loadgen import (
    REALTIME_PRIORITY,
    LoadJob,
    raise_to_realtime,
    realtime_allowed,
    start_locust,
)
from stacks import launcher

THREADS = "import threading, time; [threading.Thread(target=time.sleep, args=(30,)).start() " \
          "for _ in range(2)]; print('up', flush=True); time.sleep(30)"


@pytest.fixture
def threaded_child() -> Iterator[subprocess.Popen[str]]:
    """A process with two threads beside its main one."""
    with subprocess.Popen([sys.executable, "-c", THREADS], stdout=subprocess.PIPE,
                          text=True) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == "up\n"
        yield child
        child.kill()


def policies(pid: int) -> set[tuple[int, int]]:
    return {(os.sched_getscheduler(int(task)), os.sched_getparam(int(task)).sched_priority)
            for task in os.listdir(f"/proc/{pid}/task")}


def test_every_thread_is_raised_where_the_machine_allows(
        threaded_child: subprocess.Popen[str]) -> None:
    assert len(os.listdir(f"/proc/{threaded_child.pid}/task")) == 3
    granted = raise_to_realtime(threaded_child.pid)
    assert granted == realtime_allowed()
    if granted:
        assert policies(threaded_child.pid) == {(os.SCHED_RR, REALTIME_PRIORITY)}
    else:
        assert policies(threaded_child.pid) == {(os.SCHED_OTHER, 0)}
    assert capture_environment()["load_generator_priority"].startswith(
        "real-time" if granted else "normal")


def test_every_locust_process_starts_on_the_cores_it_is_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []

    def spawn(argv: list[str], *_: object) -> SimpleNamespace:
        started.append(argv)
        return SimpleNamespace(pid=os.getpid())

    monkeypatch.setattr(loadgen, "spawn", spawn)
    monkeypatch.setattr(loadgen, "raise_to_realtime", lambda pid: True)
    job = LoadJob(locustfile=Path("f.py"), host="http://h", schedule=Path("s"),
                  records=tmp_path / "r", log_dir=tmp_path, workers=2, cores="1", stack="s")
    start_locust(job)
    assert len(started) == 3  # the master and its two workers
    assert all(argv[:3] == [launcher.TASKSET, "--cpu-list", "1"] for argv in started)
    assert started[0][3:5] == [sys.executable, "-m"]
    assert "--master" in started[0]
    assert all("--worker" in argv for argv in started[1:])
    started.clear()
    start_locust(replace(job, workers=0, cores=None))
    assert started == [loadgen.locust_argv(replace(job, workers=0), "single")]
