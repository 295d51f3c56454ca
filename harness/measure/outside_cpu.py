"""CPU time taken by processes outside the run: neither the harness nor anything it started.

The stacks run at niceness 10 in their own session's scheduler group (`stacks.spec`,
`cpu.nice`), so that they yield to the load generator. Under the kernel's autogroup scheduling
they then yield to every other session's processes as well, `nice -n 19` or not: a process's
niceness counts only inside its own session's group, and a session's group at nice 0 weighs nine
times the stack's whole group (1024 against 110). A shell's command, a type check, another test
run on the same machine take a core from the stack while they run; on 2 cores one such process
made a replica's requests ten times slower for as long as it ran (docs/findings.md). So the
host's timeline (`host_timeline`) counts, once a second, the CPU time of every process that is
not the harness or one of its descendants, the kernel's own threads included (they work for the
run at times: disk and network). A process that starts and ends between two scans is not seen,
and one that ends loses what it took since the last: the figure is a lower bound."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def process_times(proc: Path = PROC) -> dict[int, tuple[int, int]]:
    """pid → (parent's pid, user + system CPU time in clock ticks) of every process now; one
    that ends while it is read, or whose line does not parse, is left out."""
    found = {}
    with os.scandir(proc) as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(os.path.join(entry.path, "stat")) as stat:
                    line = stat.read()
                # After the command's name, in parentheses that it may itself hold: state,
                # parent, … with user and system time the 12th and 13th (proc(5)).
                fields = line[line.rindex(")") + 2:].split()
                found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
            except (OSError, ValueError, IndexError):
                continue
    return found


def descendants(times: dict[int, tuple[int, int]], root: int) -> set[int]:
    """`root` and every process under it."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in times.items():
        children.setdefault(parent, []).append(pid)
    found, waiting = {root}, [root]
    while waiting:
        for child in children.get(waiting.pop(), []):
            if child not in found:
                found.add(child)
                waiting.append(child)
    return found


def outside_ticks(times: dict[int, tuple[int, int]], root: int) -> dict[int, int]:
    """pid → CPU ticks of each process outside `root`'s tree."""
    inside = descendants(times, root)
    return {pid: ticks for pid, (_, ticks) in times.items() if pid not in inside}


def ticks_since(outside: dict[int, int], before: dict[int, tuple[int, int]]) -> int:
    """The CPU ticks the `outside` processes took since the scan `before` (of every process,
    inside the run or not: one that left the run's tree since counts only what it took
    since); a process new since then took all of its own (it started in between)."""
    taken = 0
    for pid, ticks in outside.items():
        earlier = before[pid][1] if pid in before else 0
        taken += ticks - earlier if ticks >= earlier else ticks  # fewer: a pid used again
    return taken
