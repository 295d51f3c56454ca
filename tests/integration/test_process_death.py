"""Children die with the process that started them, even when it is SIGKILLed: a single process
through setpriv's parent-death signal, a process tree (as a vLLM replica is) through the
reaper, which takes its whole group down."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

SINGLE = "import time; time.sleep(120)"
# A child that starts a grandchild, as a vLLM API server starts its engine.
TREE = ("import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {SINGLE!r}]); time.sleep(120)")


def launcher(tmp_path: Path, program: str, reap_group: bool) -> subprocess.Popen[str]:
    """A process that spawns `program` the way the launcher does, prints its pid, and waits."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from stacks.process import spawn
        child = spawn([sys.executable, "-c", {program!r}], Path({str(tmp_path / 'c.log')!r}),
                      reap_group={reap_group})
        print(child.pid, flush=True)
        time.sleep(120)
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize(("program", "reap_group", "size"), [(TREE, True, 3), (SINGLE, False, 1)],
                         ids=["tree-under-the-reaper", "single-under-setpriv"])
def test_a_sigkilled_launcher_leaves_nothing_behind(tmp_path: Path, program: str,
                                                    reap_group: bool, size: int) -> None:
    parent = launcher(tmp_path, program, reap_group)
    family: list[psutil.Process] = []
    try:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        deadline = time.monotonic() + 10
        while len(family) < size:  # reaper, replica, engine: all started
            assert time.monotonic() < deadline, family
            family = [child, *child.children(recursive=True)]
            time.sleep(0.05)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        _, alive = psutil.wait_procs(family, timeout=15)
        assert alive == []
    finally:
        for process in family:
            if process.is_running():
                process.kill()
        if parent.stdout is not None:
            parent.stdout.close()
