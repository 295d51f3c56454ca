"""How the host takes this machine's cores away: a loop spinning on each core, its speed
counted every 100 ms, beside the steal time the kernel reports (`/proc/stat`).

On a shared virtual machine the host runs other guests on the same physical cores; the
guest's kernel counts the time it was ready to run and was not as steal. An average hides
what hurts a latency percentile: a burst that stops a core for part of a second. This
prints, per core, how many 100 ms windows the loop ran under `--floor` of its median speed
(the first 20, seconds from that core's start), and the steal share's mean, maximum and how
many windows it passed 30 % in (a window holds about 20 jiffies on 2 cores: each share to
about ±5 %). Run it with nothing else on the machine.

    .venv/bin/python bench/host_steal.py [--seconds 90] [--floor 0.6]
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import statistics
import time

from harness.measure.host_timeline import cpu_times

WINDOW_S = 0.1
CHECK_EVERY = 20_000  # loop steps between clock reads: well under a window on any core


def spin(core: int, seconds: float, results: mp.Queue) -> None:
    """(seconds from the start, steps per second) per window, on one core, for `seconds`."""
    os.sched_setaffinity(0, {core})
    counts: list[tuple[float, float]] = []
    began = time.monotonic()
    end = began + seconds
    window_start, steps = began, 0
    while True:
        steps += 1
        if steps % CHECK_EVERY:
            continue
        now = time.monotonic()
        if now - window_start >= WINDOW_S:
            counts.append((now - began, steps / (now - window_start)))
            window_start, steps = now, 0
            if now > end:
                break
    results.put((core, counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--floor", type=float, default=0.6,
                        help="report windows under this fraction of the core's median speed")
    args = parser.parse_args()
    if args.seconds <= 0 or not 0 < args.floor < 1:
        raise SystemExit("error: --seconds must be > 0 and --floor between 0 and 1")
    cores = sorted(os.sched_getaffinity(0))
    results: mp.Queue = mp.Queue()
    spinners = [mp.Process(target=spin, args=(core, args.seconds, results)) for core in cores]
    for process in spinners:
        process.start()
    samples = []
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        if (taken := cpu_times()) is None:
            raise SystemExit("error: this kernel reports no steal time (/proc/stat)")
        samples.append(taken)
        time.sleep(WINDOW_S)
    counts = dict(results.get() for _ in spinners)
    for process in spinners:
        process.join()
    for core in cores:
        median = statistics.median(rate for _, rate in counts[core])
        slow = [(round(at, 1), round(rate / median, 2))
                for at, rate in counts[core] if rate < args.floor * median]
        print(f"core {core}: {len(counts[core])} windows, {len(slow)} under "
              f"{args.floor:.0%} of its median speed (time s, speed): {slow[:20]}")
    shares = [(after.steal - before.steal) / (after.total - before.total)
              for before, after in itertools.pairwise(samples) if after.total > before.total]
    if shares:
        print(f"steal: {statistics.mean(shares):.1%} of CPU time on average, at most "
              f"{max(shares):.0%} in a window, over 30 % in {sum(s > 0.3 for s in shares)} "
              f"of {len(shares)} windows")


if __name__ == "__main__":
    main()
