from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from stacks.process import spawn, stop_trees, tail
from tests.processes import still_running

# A test-double "replica": forks a child that sleeps, and a grandchild that escapes into its
# own session (so a process-group kill alone would miss it), then sleeps itself.
FORKING_CHILD = """
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print("children started", flush=True)
time.sleep(600)
"""


def descendants_when_ready(pid: int, expected: int, timeout_s: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [p.pid for p in psutil.Process(pid).children(recursive=True)]
        if len(found) >= expected:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {expected} descendants of {pid}")


def test_stop_trees_leaves_no_process_of_the_tree(tmp_path: Path) -> None:
    process = spawn([sys.executable, "-c", FORKING_CHILD], tmp_path / "child.log")
    tree = [process.pid, *descendants_when_ready(process.pid, expected=2)]
    assert still_running(tree) == set(tree)

    stop_trees([process], grace_s=2)

    assert still_running(tree) == set()
    assert process.returncode is not None


def test_stop_trees_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
               "print('armed', flush=True); time.sleep(600)"
    process = spawn([sys.executable, "-c", stubborn], tmp_path / "stubborn.log")
    deadline = time.monotonic() + 10
    while "armed" not in tail(tmp_path / "stubborn.log") and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    stop_trees([process], grace_s=0.5)
    assert process.returncode == -9
    assert time.monotonic() - started < 10


def test_spawn_writes_output_to_the_log(tmp_path: Path) -> None:
    process = spawn([sys.executable, "-c", "print('hello from the child')"], tmp_path / "x.log")
    process.wait(timeout=10)
    assert tail(tmp_path / "x.log") == "hello from the child"


@pytest.mark.parametrize("reap_group", [False, True])
def test_a_niced_process_and_what_it_starts_yield_the_cpu(tmp_path: Path,
                                                          reap_group: bool) -> None:
    # The child reports its own niceness and that of a process it starts.
    report = ("import os, subprocess, sys; print(os.nice(0)); sys.stdout.flush(); "
              "subprocess.run([sys.executable, '-c', 'import os; print(os.nice(0))'])")
    base = os.nice(0)
    process = spawn([sys.executable, "-c", report], tmp_path / "nice.log", nice=7,
                    reap_group=reap_group)
    assert process.wait(timeout=30) == 0
    assert (tmp_path / "nice.log").read_text().split() == [str(base + 7)] * 2


def test_a_niced_session_s_scheduler_group_is_niced_too(tmp_path: Path) -> None:
    autogroup = Path("/proc/self/autogroup")
    if not autogroup.exists():
        pytest.skip("this kernel has no autogroup: the processes' niceness alone counts")
    process = spawn([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "s.log",
                    nice=7)
    try:
        assert Path(f"/proc/{process.pid}/autogroup").read_text().split()[-1] == "7"
    finally:
        stop_trees([process], grace_s=1)
