"""Where a cold lazy start's time goes: when its blocks arrived, against when its engine's
first process was done importing, from a finished `harness coldstart` folder.

The registry logs every response as it ends (`registry/served.log`: time, method, path,
status, bytes); each replica logs the first line of each of vLLM's processes (API server,
engine core, worker) as it is done importing, and the line "Starting vLLM server" once it
serves. For each start this prints:

- the image's blocks (lazy) or blob (eager): how many, how many MB, when the last one ended
  after the start's manifest, and the rate that makes: the link's rate is an upper bound,
  and a fetcher with one request in flight pays the registry's latency on every block;
- the API server's import: the engine's start less the time from the API server's first
  line to "Starting vLLM server" (one-second log stamps);
- the engine core's and the worker's imports, from first line to first line.

Then, over the trials: the lazy fetch's rate against eager's download, the API server's
import cold against warm, and the bound the goal meets: eager's cold first answer ÷ the lazy
stack's warm one, which a lazy start reaches only if every block arrived before it was read.

    .venv/bin/python bench/lazy_timeline.py --from results/<coldstart run>
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.report.coldstart_results import ColdStartResult, StartRecord
from harness.report.results import read_result

# vLLM's log prefix: "(APIServer pid=20720) INFO 12-06 02:43:02 [...]", local time, no year.
PROCESS_LINE = re.compile(
    r"\((APIServer|EngineCore|Worker) pid=\d+\) \w+ (\d\d-\d\d \d\d:\d\d:\d\d)")
SERVING = "Starting vLLM server"


@dataclass(frozen=True)
class Served:
    at: float
    method: str
    path: str
    size: int


@dataclass(frozen=True)
class ReplicaLines:
    first: dict[str, float]  # process → its first line's time
    serving: float


def read_served(path: Path) -> list[Served]:
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[3] in ("200", "206"):  # 206: a range, a lazy block
            rows.append(Served(float(parts[0]), parts[1], parts[2], int(parts[4])))
    return rows


def read_replica(path: Path, year: int) -> ReplicaLines | None:
    first: dict[str, float] = {}
    serving = None
    for line in path.read_text(errors="replace").splitlines():
        if (match := PROCESS_LINE.search(line)) is None:
            continue
        stamp = time.mktime(datetime.strptime(f"{year}-{match[2]}", "%Y-%m-%d %H:%M:%S")
                            .timetuple())
        first.setdefault(match[1], stamp)
        if SERVING in line:
            serving = stamp
    if serving is None or "APIServer" not in first:
        return None
    return ReplicaLines(first, serving)


def image_fetch(served: list[Served], start: StartRecord, lines: ReplicaLines
                ) -> tuple[int, float, float] | None:
    """(blob responses, MB, seconds from the start's manifest to the last one), cold only."""
    manifest = f"/manifests/{start.stack.split(':')[0]}.json"
    before = [row.at for row in served if row.path == manifest and row.at <= lines.serving]
    if not before:
        return None
    began = before[-1]
    blobs = [row for row in served if began <= row.at <= lines.serving
             and row.method == "GET" and row.path.startswith("/blobs/")]
    if not blobs:
        return None
    return len(blobs), sum(row.size for row in blobs) / 1e6, blobs[-1].at - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, required=True,
                        help="a finished `harness coldstart` folder")
    args = parser.parse_args()
    result_path = args.source / "coldstart.json"
    served_path = args.source / "registry" / "served.log"
    for path in (result_path, served_path):
        if not path.is_file():
            raise SystemExit(f"error: {path} not found; --from takes a `harness coldstart` folder")
    result = read_result(result_path, ColdStartResult)
    served = read_served(served_path)
    year = datetime.fromtimestamp(served[0].at).year if served else datetime.now().year
    link_mb_s = result.registry.bandwidth_mbps / 8
    rates: dict[str, list[float]] = {}
    imports: dict[tuple[str, str], list[float]] = {}
    print(f"run {args.source} · registry {result.registry.bandwidth_mbps:g} Mbit/s "
          f"({link_mb_s:g} MB/s), {result.registry.latency_ms:g} ms")
    for start in sorted(result.starts, key=lambda s: (s.stack, s.trial, s.cache)):
        log = args.source / start.stack / f"trial-{start.trial}" / start.cache / "replica-0.log"
        lines = read_replica(log, year) if log.is_file() else None
        if lines is None:
            print(f"{start.stack} trial {start.trial} {start.cache}: no replica log to read")
            continue
        api_import = start.engine_s - (lines.serving - lines.first["APIServer"])
        imports.setdefault((start.stack, start.cache), []).append(api_import)
        later = "".join(
            f", {name} {lines.first[name] - lines.first[before]:.0f} s"
            for before, name in (("APIServer", "EngineCore"), ("EngineCore", "Worker"))
            if name in lines.first and before in lines.first)
        fetch = image_fetch(served, start, lines) if start.cache == "cold" else None
        fetched = ""
        if fetch is not None:
            count, mb, span = fetch
            rates.setdefault(start.mode, []).append(mb / span)
            fetched = f"{count} blob responses, {mb:.0f} MB, the last {span:.1f} s after the " \
                      f"manifest ({mb / span:.1f} MB/s); "
        print(f"{start.stack} trial {start.trial} {start.cache}: {fetched}API server imports "
              f"{api_import:.1f} s{later}")
    for mode, values in sorted(rates.items()):
        rate = statistics.mean(values)
        print(f"{mode}, cold: {rate:.1f} MB/s ({rate / link_mb_s:.0%} of the link), "
              f"{len(values)} start(s)")
    for stack in sorted({stack for stack, _ in imports}):
        cold, warm = imports.get((stack, "cold")), imports.get((stack, "warm"))
        if cold and warm:
            cold_s, warm_s = statistics.mean(cold), statistics.mean(warm)
            print(f"{stack}: the API server imports in {cold_s:.1f} s cold, {warm_s:.1f} s "
                  f"warm (+{cold_s - warm_s:.1f} s)")
    print_bound(result)


def print_bound(result: ColdStartResult) -> None:
    """Eager's cold first answer ÷ each lazy stack's warm one: what the goal's ratio would be
    if every block were on the node before the engine read it."""
    totals = {(row.stack, row.mode, row.cache): row.phases["total_s"].value
              for row in result.summaries}
    for (stack, mode, cache), eager_total in sorted(totals.items()):
        if mode != "eager" or cache != "cold":
            continue
        for (lazy_stack, lazy_mode, lazy_cache), lazy_total in sorted(totals.items()):
            if lazy_mode == "lazy" and lazy_cache == "warm":
                print(f"bound: {stack} eager cold {eager_total:.1f} s ÷ {lazy_stack} lazy warm "
                      f"{lazy_total:.1f} s = {eager_total / lazy_total:.2f}× (every block "
                      f"there before its read)")

if __name__ == "__main__":
    main()
