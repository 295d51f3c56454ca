"""How much replaying each level's own arrivals moves a calibration, on a folder already
measured (`harness run --workload calibration_levels`, or `harness capacity`).

For each stack it calibrates twice on the same levels, in one run: each level simulated on
the arrival times its schedule sent (as `harness project` does) and on fresh Poisson draws
at its rate (as it did before), and prints each one's worst and held-out error, the fitted
set, and every level's measured and simulated P50 and P99. A schedule's burst sits in every
trial of a run alike, so only the replay can reproduce what it does to a level's P99.

    .venv/bin/python bench/calibration_arrivals.py RUN_DIR diy,optimized

About 8 minutes a stack on 2 cores.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from harness.projection.calibrate import Calibration, calibrate
from harness.projection.measured import Measured, read_measured


def on_poisson(measured: Measured) -> Measured:
    """The same levels without their arrivals: simulated at Poisson times at their rates."""
    return dataclasses.replace(measured, levels=[dataclasses.replace(level, arrivals=())
                                                 for level in measured.levels])


def show(stack: str, how: str, fitted: Calibration) -> None:
    model = fitted.model
    print(f"{stack} on {how}: worst {fitted.max_error:.1%}, held out "
          f"{fitted.held_out_error:.1%} (API server {model.front_s * 1000:.1f} ms, sharing "
          f"{model.jump:g}, batching {model.slowdown:.4f})")
    for fit, held in zip(fitted.fits, fitted.held_out, strict=True):
        level = fit.level
        print(f"  {level.rate_qps:6.2f} QPS  P50 {level.p50_s:.3f} / {fit.sim_p50_s:.3f} s  "
              f"P99 {level.p99_s:.3f} / {fit.sim_p99_s:.3f} s  error {fit.error:.1%}  "
              f"held out {held.error:.1%}")


def main(run: Path, stacks: list[str]) -> None:
    print("each level: measured / simulated")
    for stack in stacks:
        measured = read_measured(run, stack)
        replayed, poisson = calibrate(measured), calibrate(on_poisson(measured))
        show(stack, "its own arrivals", replayed)
        show(stack, "Poisson arrivals", poisson)
        print(f"{stack}: worst error replayed / Poisson "
              f"{replayed.max_error / poisson.max_error:.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: calibration_arrivals.py RUN_DIR STACK[,STACK...]")
    main(Path(sys.argv[1]), sys.argv[2].split(","))
