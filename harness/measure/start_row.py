"""The scorecard's cold-start row, in short form: the scorecard's own stack starts, timed.

In the first `cold_trials` trials each stack starts cold (nothing of its image on this
machine: diy pulls it whole, optimized mounts it with an empty block cache), and its start is
written to `<stack>/trial-<k>/start.json`: the image phase (fetched and unpacked, or mounted)
and the slowest replica's spawn → `/health`. The row's figure is their sum, replica scheduled
→ every replica serving, as a mean over those trials with its Student-t interval. It is the
short form of `harness coldstart`, which times one replica's phases cold and warm and the
first completion, and counts the bytes fetched.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness.experiments.capacity.stats import mean_interval
from harness.measure.scorecard import RowContext, interval_row
from harness.report.result_base import Result
from harness.report.scorecard_results import ROW_LABELS, ScoreFigure, ScoreRow
from stacks.launcher import Stack

START_FILE = "start.json"


class StartTimes(Result):
    mode: str = Field(description="none, eager or lazy")
    cold: bool = Field(description="nothing of the image was on this machine before")
    image_s: float = Field(description="replica scheduled → image usable")
    replicas_ready_s: float = Field(description="replicas spawned → the slowest one healthy")
    serving_s: float = Field(description="image_s + replicas_ready_s")


def record_start(stack: Stack, cold: bool, path: Path) -> None:
    replicas = [seconds for name, seconds in stack.ready_s.items() if name != "balancer"]
    image_s = stack.image.usable_s if stack.image is not None else 0.0
    ready_s = max(replicas, default=0.0)
    StartTimes(mode=stack.spec.image.mode, cold=cold and not (stack.image and stack.image.warm),
               image_s=round(image_s, 3), replicas_ready_s=round(ready_s, 3),
               serving_s=round(image_s + ready_s, 3)).write(path)


def cold_start_row(folder: Path, stacks: list[str], cold_trials: int,
                   baseline: str) -> ScoreRow | None:
    """The row over the cold trials every stack finished; None before there is one."""
    found = {stack: {trial: StartTimes.model_validate_json(path.read_text())
                     for trial in range(1, cold_trials + 1)
                     if (path := folder / stack / f"trial-{trial}" / START_FILE).is_file()}
             for stack in stacks}
    shared = sorted(set.intersection(*(set(times) for times in found.values())))
    if not shared:
        return None
    figures = {}
    for stack in stacks:
        values = [found[stack][trial].serving_s for trial in shared]
        images = [found[stack][trial].image_s for trial in shared]
        interval = mean_interval(values)
        mode = found[stack][shared[0]].mode
        # No start takes less than nothing: a t interval of two starts can reach below 0,
        # and a bound below 0 would turn the ratio's bounds negative.
        figures[stack] = ScoreFigure(
            value=interval.value, ci_low=max(interval.low, 0.0), ci_high=interval.high,
            requests=0,
            trials=list[float | None](values),
            note=f"{mode} image: {sum(images) / len(images):.1f} s of it to the image, the "
                 "rest the engine's own start")
    setting = f"{len(shared)} cold start(s) each, short form"
    return interval_row("cold_start", ROW_LABELS["cold_start"], "s", False, figures,
                        RowContext(setting, "start", baseline),
                        f"Student t over {len(shared)} cold starts, 95 %")
