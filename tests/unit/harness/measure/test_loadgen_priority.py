"""The load generator's real-time priority: granted where the machine allows it, with every
thread the process has; refused without error elsewhere, the process left as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from harness.measure.environment import capture_environment
from harness.measure.loadgen import REALTIME_PRIORITY, raise_to_realtime, realtime_allowed

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
