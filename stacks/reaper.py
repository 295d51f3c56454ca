"""`python -m stacks.reaper -- ARGV...`: runs ARGV and takes its whole process group down with
it when the process that started the reaper dies, however it dies.

A vLLM replica is a tree (API server, EngineCore, workers). The kernel's parent-death signal
reaches only one process: given to the API server, it kills that one and orphans the engine
and its workers, each holding gigabytes. The reaper leads the replica's process group (the
launcher starts it in a new session), asks the kernel for SIGUSR1 when its parent dies, and
then stops the group: SIGTERM, a short grace, SIGKILL.

Otherwise it stays out of the way: a SIGTERM to the group (the launcher's stop) reaches the
replica directly, and the reaper waits for it and leaves as it did, with its exit status or
by the same signal, so whoever watches the reaper sees the replica's own end.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from types import FrameType

PR_SET_PDEATHSIG = 1
GRACE_S = 5.0


def stop_group(signum: int, frame: FrameType | None) -> None:
    """The parent died: stop the whole group, the reaper last."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    time.sleep(GRACE_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(0, signal.SIGKILL)


def leave_as(returncode: int) -> None:
    """Exit as the child did: with its status, or killed by the same signal."""
    if returncode < 0:
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP keep theirs
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
    sys.exit(returncode)


def main(argv: list[str]) -> None:
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        sys.exit("usage: python -m stacks.reaper -- COMMAND [ARG...]")
    parent = os.getppid()
    signal.signal(signal.SIGUSR1, stop_group)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # the group's stop: wait for it
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    if os.getppid() != parent:  # the parent died before the request took hold
        stop_group(signal.SIGUSR1, None)
    leave_as(subprocess.Popen(command).wait())


if __name__ == "__main__":
    main(sys.argv[1:])
