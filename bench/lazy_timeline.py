"""Where a cold lazy start's time goes: when its blocks arrived, against when its engine's
first process was done importing, from a finished `harness coldstart` folder.

The registry logs every response as nginx hands its last byte to the link
(`registry/served.log`: time, method, path, status, bytes; a rate from it can read about 1 %
over the link's). Each replica logs the first line of each of vLLM's processes (API server,
engine core, worker) once it has imported the engine, and "Starting vLLM server" once it
serves, in the node's local time to the second. For each start this prints:

- cold: the image's blocks (lazy) or blob (eager) fetched before its first answer: how many,
  how many MB, when the last one left the registry after the start's manifest, and MB/s
  over that span (the link's rate is the bound; a fetcher with one request in flight pays
  the registry's latency on every block). The bytes are checked against what the harness
  counted for the start; a mismatch (a log read in the wrong time zone) stops the script;
- the API server's start: the engine's start less the time from the API server's first line
  to "Starting vLLM server" — its import, then its start-up to /health (±1 s: whole-second
  stamps);
- the engine core's and the worker's first lines, each after the line before it (that
  process's spawn and import, and the one before's work after its first line).

Then, over the trials: each mode's cold fetch rate against the link's, the API server's
start cold against warm, and the bound the goal meets: eager's cold first answer ÷ the lazy
stack's warm one, which a lazy start reaches only if every block arrived before it was read.

    .venv/bin/python bench/lazy_timeline.py --from results/<coldstart run> \
        [--log-utc-offset-hours H]     # the node's offset when it ran; default this machine's
"""

from __future__ import annotations

import argparse
import calendar
import re
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from harness.report.coldstart_results import ColdStartResult, StartRecord
from harness.report.results import read_result
from stacks.images.registry import ServedRow, manifest_name, served_rows

# vLLM's log prefix: "(APIServer pid=20720) INFO 12-06 02:43:02 [...]", local time, no year.
PROCESS_LINE = re.compile(
    r"\((APIServer|EngineCore|Worker) pid=\d+\) \w+ (\d\d-\d\d \d\d:\d\d:\d\d)")
SERVING = "Starting vLLM server"


@dataclass(frozen=True)
class ReplicaLines:
    first: dict[str, float]  # process → its first line's time
    serving: float


def read_served(path: Path) -> list[ServedRow]:
    """The registry's responses that sent something: 200 whole, 206 a range (a lazy block)."""
    return [row for row in served_rows(path) if row.status in (200, 206)]


def read_replica(path: Path, year: int, utc_offset_s: float) -> ReplicaLines | None:
    first: dict[str, float] = {}
    serving = None
    for line in path.read_text(errors="replace").splitlines():
        if (match := PROCESS_LINE.search(line)) is None:
            continue
        local = datetime.strptime(f"{year}-{match[2]}", "%Y-%m-%d %H:%M:%S")
        stamp = calendar.timegm(local.timetuple()) - utc_offset_s
        first.setdefault(match[1], stamp)
        if SERVING in line:
            serving = stamp
    if serving is None or "APIServer" not in first:
        return None
    return ReplicaLines(first, serving)


def image_fetch(served: list[ServedRow], start: StartRecord, lines: ReplicaLines
                ) -> tuple[int, float, float] | None:
    """(blob responses, MB, seconds from the start's manifest to the last one) of a cold
    start, up to its first answer as the harness counted; None where the registry's log is
    empty (a run from before it logged)."""
    if not served:
        return None
    manifest = "/" + manifest_name(start.stack.split(":")[0])
    earliest = lines.serving - start.total_s - 2.0  # the stamps are whole seconds
    candidates = [row.at for row in served
                  if row.path == manifest and earliest <= row.at <= lines.serving + 1.0]
    began = candidates[-1] if candidates else lines.serving
    blobs = [row for row in served if began <= row.at <= began + start.total_s + 0.5
             and row.method == "GET" and row.path.startswith("/blobs/")]
    fetched = sum(row.size for row in blobs)
    # The harness counts the manifests too (a few kB); more than a MiB or 1 % apart, the
    # window holds another start's requests.
    if not candidates or not blobs or abs(start.bytes_fetched - fetched) > max(
            2**20, 0.01 * fetched):
        raise SystemExit(
            f"error: {start.stack} trial {start.trial}: the registry's log gives {fetched:,} "
            f"bytes where the harness counted {start.bytes_fetched:,}; pass the node's UTC "
            f"offset when it ran (--log-utc-offset-hours), its replica logs are local time")
    return len(blobs), fetched / 1e6, blobs[-1].at - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, required=True,
                        help="a finished `harness coldstart` folder")
    parser.add_argument("--log-utc-offset-hours", type=float,
                        default=time.localtime().tm_gmtoff / 3600,
                        help="the node's UTC offset when the run's replicas logged "
                             "(default: this machine's now)")
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
        lines = (read_replica(log, year, args.log_utc_offset_hours * 3600) if log.is_file()
                 else None)
        if lines is None:
            print(f"{start.stack} trial {start.trial} {start.cache}: {log} missing, or without "
                  f"the API server's lines and \"{SERVING}\"")
            continue
        api_import = start.engine_s - (lines.serving - lines.first["APIServer"])
        imports.setdefault((start.stack, start.cache), []).append(api_import)
        later = "".join(
            f", {name}'s first line +{lines.first[name] - lines.first[before]:.0f} s"
            for before, name in (("APIServer", "EngineCore"), ("EngineCore", "Worker"))
            if name in lines.first and before in lines.first)
        fetch = image_fetch(served, start, lines) if start.cache == "cold" else None
        fetched = ""
        if fetch is not None:
            count, mb, span = fetch
            rates.setdefault(start.mode, []).append(mb / span)
            fetched = f"{count} blob responses, {mb:.0f} MB, the last {span:.1f} s after the " \
                      f"manifest ({mb / span:.1f} MB/s); "
        print(f"{start.stack} trial {start.trial} {start.cache}: {fetched}API server up in "
              f"{api_import:.1f} s{later}")
    for mode, values in sorted(rates.items()):
        rate = statistics.mean(values)
        print(f"{mode}, cold: {rate:.1f} MB/s ({rate / link_mb_s:.0%} of the link), "
              f"{len(values)} start(s)")
    for stack in sorted({stack for stack, _ in imports}):
        cold, warm = imports.get((stack, "cold")), imports.get((stack, "warm"))
        if cold and warm:
            cold_s, warm_s = statistics.mean(cold), statistics.mean(warm)
            print(f"{stack}: the API server up in {cold_s:.1f} s cold, {warm_s:.1f} s "
                  f"warm (+{cold_s - warm_s:.1f} s; import and start-up, ±1 s)")
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
