"""Cold start: the issue's goals as ratios measured in one run, then the same phases projected
for a large CUDA image at typical registry bandwidths.

Runs `harness coldstart` (both stacks from their images, cold then warm, `--trials` each;
`--stacks diy:eager,diy:lazy-noprefetch,diy:lazy` starts one stack each way, to see the
image's part and prefetch's alone), or reads a finished one (`--from results/<run>`), and
prints:

- image usable, eager ÷ lazy (each lazy stack), cold (goal ≥ 10×);
- replica scheduled → first answer, eager ÷ lazy, cold (goal ≥ 1.5×), and how much of it is
  the engine's own start;
- the image's part, eager ÷ lazy: each trial's cold first answer less its warm one, so that
  what a start costs with the image on the node (optimized's second API server, reading
  through the lazy mount) does not enter it;
- bytes fetched before the first answer ÷ image size (Slacker, FAST '16: 6.4 %);
- a projection for `--image-gb` of compressed image at each of `--bandwidths-mbps`, from what
  this run measured: eager = download + unpack (at this run's unpack rate, per compressed
  byte); lazy = mount + the fetched fraction of the image at that bandwidth + one registry
  latency per 4 MiB block (this fetcher asks for one block at a time). Both add the same
  engine start, which the projection leaves out.

    .venv/bin/python bench/coldstart.py [--trials 3] [--stacks diy,optimized] [--from DIR] \\
        [--image-gb 15] [--bandwidths-mbps 400,1000,10000] [--latency-ms 10]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from harness.experiments.coldstart import ColdStartConfig, run_coldstart
from harness.report.coldstart_results import ColdStartResult, StartRatio, StartRecord
from harness.report.results import read_result
from stacks.images.manifest import BLOCK_SIZE


def ratio_lines(result: ColdStartResult, phase: str, label: str) -> list[str]:
    """One line per lazy stack against the eager one (with and without prefetch, if both)."""
    ratios = [r for r in result.ratios if r.phase == phase and r.cache == "cold"]
    if not ratios:
        return [f"{label}: no eager and lazy stack to compare"]
    return [ratio_line(ratio, label) for ratio in ratios]


def ratio_line(ratio: StartRatio, label: str) -> str:
    interval = ("" if ratio.ci_low is None or ratio.ci_high is None
                else f" [{ratio.ci_low:.2f}, {ratio.ci_high:.2f}]")
    goal = "" if ratio.goal is None else (
        f" (goal ≥ {ratio.goal:g}×: " + ("met" if (ratio.ci_low or 0) >= ratio.goal else
                                         "met on the mean only" if ratio.value >= ratio.goal
                                         else "missed") + ")")
    return f"{label}: {ratio.eager} ÷ {ratio.lazy} = {ratio.value:.2f}×{interval}{goal}"


def cold(result: ColdStartResult, mode: str) -> list[StartRecord]:
    return [start for start in result.starts if start.mode == mode and start.cache == "cold"]


def project(result: ColdStartResult, image_gb: float, bandwidths: list[float],
            latency_ms: float) -> list[str]:
    eager, lazy = cold(result, "eager"), cold(result, "lazy")
    if not eager or not lazy:
        return ["projection: needs a cold eager and a cold lazy start"]
    rate = result.registry.bandwidth_mbps * 1e6 / 8
    # Unpacking, per compressed byte: as timed, or in runs from before it was, what the eager
    # image phase took beyond its download at the link's rate.
    unpack_s_per_byte = statistics.median(
        (start.unpack_s if start.unpack_s > 0 else
         max(start.image_s - start.image_bytes / rate, 0.0)) / start.image_bytes
        for start in eager)
    fraction = statistics.median(start.fetched_fraction for start in lazy)
    mount_s = statistics.median(start.image_s for start in lazy)
    size = image_gb * 1e9
    lines = [f"projection for a {image_gb:g} GB image (unpack {1 / unpack_s_per_byte / 1e6:.0f} "
             f"MB/s of image, fetched fraction {fraction:.1%}, mount {mount_s:.2f} s, "
             f"{latency_ms:g} ms per block request), engine start left out:"]
    for mbps in bandwidths:
        bytes_s = mbps * 1e6 / 8
        eager_s = size / bytes_s + size * unpack_s_per_byte
        blocks = fraction * size / BLOCK_SIZE
        lazy_s = mount_s + fraction * size / bytes_s + blocks * latency_ms / 1000
        slacker_s = mount_s + 0.064 * size / bytes_s + 0.064 * size / BLOCK_SIZE * latency_ms / 1e3
        lines.append(f"  {mbps:>6g} Mbit/s: eager {eager_s:7.1f} s; lazy {lazy_s:6.1f} s to "
                     f"fetch what this engine read ({eager_s / lazy_s:4.1f}×), {slacker_s:5.1f} s "
                     f"at Slacker's 6.4 % ({eager_s / slacker_s:5.1f}×)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--stacks", default="diy,optimized",
                        help="as `harness coldstart --stacks`, e.g. "
                             "diy:eager,diy:lazy-noprefetch,diy:lazy")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="a finished `harness coldstart` folder to read instead of running")
    parser.add_argument("--image-gb", type=float, default=15.0)
    parser.add_argument("--bandwidths-mbps", default="400,1000,10000")
    parser.add_argument("--latency-ms", type=float, default=10.0)
    args = parser.parse_args()
    path = (args.source / "coldstart.json" if args.source is not None else
            run_coldstart(ColdStartConfig(stacks=args.stacks.split(","), trials=args.trials),
                          print))
    result = read_result(path, ColdStartResult)
    print(f"run {path.parent} · {result.trials} trial(s) · registry "
          f"{result.registry.bandwidth_mbps:g} Mbit/s, {result.registry.latency_ms:g} ms")
    for phase, label in (("image_s", "image usable (cold)"),
                         ("total_s", "scheduled → first answer (cold)"),
                         ("engine_s", "engine start → /health (cold)"),
                         ("image_part_s", "the image's part (cold less warm first answer)")):
        print("\n".join(ratio_lines(result, phase, label)))
    for row in result.summaries:
        total = row.phases["total_s"].value
        print(f"{row.stack} ({row.mode}, {row.cache}): first answer {total:.1f} s, engine's own "
              f"start {row.phases['engine_s'].value / total:.0%} of it; fetched "
              f"{row.fetched_fraction.value:.1%} of the image")
    for line in project(result, args.image_gb,
                        [float(value) for value in args.bandwidths_mbps.split(",")],
                        args.latency_ms):
        print(line)


if __name__ == "__main__":
    main()
