"""Process checks the tests share: which of a set of PIDs is still a live process."""

from __future__ import annotations

from collections.abc import Iterable

import psutil


def still_running(pids: Iterable[int]) -> set[int]:
    """The PIDs that name a live process (a zombie, already dead but not yet reaped, is not)."""
    running = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.add(pid)
        except psutil.NoSuchProcess:
            pass
    return running
