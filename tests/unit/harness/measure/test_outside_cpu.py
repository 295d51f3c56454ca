"""CPU time outside the run: every process's ticks read from /proc, the run's own tree told
from the rest, and a real busy process outside it seen on the host's timeline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from harness.measure.host_timeline import OUTSIDE_EVERY, host_sampled, read_host
from harness.measure.outside_cpu import (
    descendants,
    outside_ticks,
    process_times,
    ticks_since,
)

BUSY = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def fake_proc(root: Path, processes: dict[int, tuple[str, int, int, int]]) -> Path:
    """A /proc of pid → (command name, parent, user ticks, system ticks)."""
    for pid, (name, parent, user, system) in processes.items():
        (root / str(pid)).mkdir(parents=True)
        # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        # utime stime …
        (root / str(pid) / "stat").write_text(
            f"{pid} ({name}) S {parent} 1 1 0 -1 0 0 0 0 0 {user} {system} 0 0 20 0 1 0\n")
    (root / "self").mkdir()  # not a process: left out
    return root


def test_ticks_are_read_per_process_and_the_runs_tree_is_told_from_the_rest(
        tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, {1: ("init", 0, 5, 5), 100: ("harness", 1, 30, 10),
                                101: ("VLLM::Worker (x)", 100, 500, 20),
                                102: ("locust", 100, 40, 2), 103: ("grandchild", 101, 7, 0),
                                200: ("mypy ) odd", 1, 90, 10)})
    times = process_times(proc)
    assert times[101] == (100, 520)  # a name holding parentheses and spaces is skipped
    assert times[200] == (1, 100)
    assert descendants(times, 100) == {100, 101, 102, 103}
    assert outside_ticks(times, 100) == {1: 10, 200: 100}
    # a second later: mypy took 40 more ticks, a new process 5, init's pid was used again (3
    # ticks, all its own), and the worker left the run's tree (its API server gone): only
    # the 30 it took since counts
    later = {1: 3, 200: 140, 300: 5, 101: 550}
    assert ticks_since(later, times) == 40 + 5 + 3 + 30


def test_a_busy_process_outside_the_run_shows_on_the_timeline_and_one_inside_does_not(
        tmp_path: Path) -> None:
    inside = subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=0.5)])
    try:
        assert inside.pid in descendants(process_times(), os.getpid())
        assert inside.pid not in outside_ticks(process_times(), os.getpid())
    finally:
        inside.wait(timeout=10)
    every_s = 0.05
    with host_sampled(tmp_path / "trial-1", every_s=every_s):
        time.sleep(OUTSIDE_EVERY * every_s * 1.5)  # a scan with nothing outside
        # Started by a shell that exits at once: the loop's parent is then init, as a
        # command from another session's would be.
        subprocess.run(["sh", "-c", f"{sys.executable} -c '{BUSY.format(seconds=1.6)}' &"],
                       check=True)
        time.sleep(1.8)
    samples = read_host(tmp_path / "trial-1")
    assert samples is not None
    shares = samples["outside_share"].dropna()
    assert len(shares) >= 3  # once every OUTSIDE_EVERY samples
    # One core of this machine's busy through a whole scan: about its share of all of them
    # (whatever else runs on the machine only adds to it).
    assert shares.max() >= 0.7 / (os.cpu_count() or 1)
