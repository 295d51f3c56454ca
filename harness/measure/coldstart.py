"""Cold-start figures from the start records: each phase's mean over trials with its Student-t
interval, per stack and cache state, and the eager ÷ lazy ratios of the phases, paired by
trial (a trial's two stacks started back to back, in alternating order), with the t interval
on the logs of the paired ratios (`harness.experiments.capacity.stats`).

One more ratio leaves out what a start costs with the image already on the node: the image's
part, a trial's cold first answer less its warm one (the same stack on the same node a minute
later). Where the stacks' warm starts differ (optimized runs more API server processes; a
lazy image is read through its mount even warm), the first answer's ratio carries that too;
this one does not."""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.experiments.capacity.stats import Interval, mean_interval, ratio_interval
from harness.report.coldstart_results import (
    PHASE_LABELS,
    PHASES,
    PhaseFigure,
    StartRatio,
    StartRecord,
    StartSummary,
)

# The goals the ratios are held to: image usable ≥ 10× sooner, first answer ≥ 1.5× sooner.
GOALS = {("image_s", "cold"): 10.0, ("total_s", "cold"): 1.5}
RATIO_PHASES = ("image_s", "engine_s", "total_s")
# The image's part: a trial's cold first answer less its warm one, compared cold.
IMAGE_PART = "image_part_s"


def _figure(interval: Interval, values: Sequence[float]) -> PhaseFigure:
    """The mean and its t interval, whose lower side stops at 0: no phase takes less."""
    return PhaseFigure(value=interval.value, ci_low=max(interval.low, 0.0),
                       ci_high=interval.high, trials=list(values))


def _by(starts: Sequence[StartRecord], stack: str, cache: str) -> list[StartRecord]:
    return sorted((start for start in starts if start.stack == stack and start.cache == cache),
                  key=lambda start: start.trial)


def summarize_starts(starts: Sequence[StartRecord]
                     ) -> tuple[list[StartSummary], list[StartRatio], list[str]]:
    stacks = list(dict.fromkeys(start.stack for start in starts))
    summaries = []
    for stack in stacks:
        for cache in ("cold", "warm"):
            rows = _by(starts, stack, cache)
            if not rows:
                continue
            phases = {phase: _figure(mean_interval(values), values)
                      for phase in (*PHASES, "total_s")
                      if (values := [float(getattr(row, phase)) for row in rows])}
            fractions = [row.fetched_fraction for row in rows]
            summaries.append(StartSummary(stack=stack, mode=rows[0].mode, cache=cache,
                                          phases=phases,
                                          fetched_fraction=_figure(mean_interval(fractions),
                                                                   fractions)))
    ratios = _ratios(starts)
    return summaries, ratios, _notes(summaries, ratios)


def _ratios(starts: Sequence[StartRecord]) -> list[StartRatio]:
    """The eager stack against each lazy one (with and without prefetch, when both ran)."""
    eager = next((start.stack for start in starts if start.mode == "eager"), None)
    lazy = list(dict.fromkeys(start.stack for start in starts if start.mode == "lazy"))
    if eager is None:
        return []
    return [ratio for stack in lazy for ratio in _paired_ratios(starts, eager, stack)]


def _paired_ratios(starts: Sequence[StartRecord], eager: str, lazy: str) -> list[StartRatio]:
    ratios = []
    for cache in ("cold", "warm"):
        pairs = {row.trial: row for row in _by(starts, eager, cache)}
        paired = [(pairs[row.trial], row) for row in _by(starts, lazy, cache)
                  if row.trial in pairs]
        for phase in RATIO_PHASES if paired else ():
            ratios.append(_ratio(phase, cache, eager, lazy,
                                 [float(getattr(mine, phase)) for mine, _ in paired],
                                 [float(getattr(theirs, phase)) for _, theirs in paired]))
    mine, theirs = _image_parts(starts, eager), _image_parts(starts, lazy)
    trials = sorted(set(mine) & set(theirs))
    ratios.append(_ratio(IMAGE_PART, "cold", eager, lazy, [mine[t] for t in trials],
                         [theirs[t] for t in trials]))
    return [ratio for ratio in ratios if ratio is not None]


def _ratio(phase: str, cache: str, eager: str, lazy: str, top: list[float],
           bottom: list[float]) -> StartRatio | None:
    """Eager's figures ÷ lazy's, paired by trial; none where there is no pair, or where a
    figure is not above 0 (an image's part, when a cold start took no longer than its warm
    one): no ratio of it means anything."""
    if not top or min(top + bottom) <= 0:
        return None
    interval = ratio_interval(top, bottom)
    return StartRatio(phase=phase, cache=cache, eager=eager, lazy=lazy, value=interval.value,
                      ci_low=interval.low, ci_high=interval.high,
                      goal=GOALS.get((phase, cache)), method=interval.method)


def _image_parts(starts: Sequence[StartRecord], stack: str) -> dict[int, float]:
    """Per trial, the stack's cold first answer less its warm one: what the image added."""
    warm = {row.trial: row.total_s for row in _by(starts, stack, "warm")}
    return {row.trial: row.total_s - warm[row.trial] for row in _by(starts, stack, "cold")
            if row.trial in warm}


def _notes(summaries: Sequence[StartSummary], ratios: Sequence[StartRatio]) -> list[str]:
    """Where the engine's own start, not the image, sets the time to the first answer."""
    notes = []
    for row in summaries:
        total = row.phases["total_s"].value
        engine = row.phases["engine_s"].value
        if total > 0 and engine / total >= 0.5:
            notes.append(f"{row.stack} ({row.mode}, {row.cache}): the engine's own start "
                         f"({PHASE_LABELS['engine_s']}) is {engine / total:.0%} of the time to "
                         "the first answer")
    notes += _engine_notes(ratios)
    for ratio in ratios:
        if ratio.goal is None:
            continue
        low = ratio.ci_low if ratio.ci_low is not None else math.nan
        high = ratio.ci_high if ratio.ci_high is not None else math.nan
        held = "holds" if low >= ratio.goal else (
            "holds on the mean only" if ratio.value >= ratio.goal else "is missed")
        notes.append(f"goal {ratio.phase} ({ratio.cache}) eager ÷ lazy ≥ {ratio.goal:g}×: "
                     f"{held} ({ratio.value:.2f}× [{low:.2f}, {high:.2f}], "
                     f"{ratio.eager} ÷ {ratio.lazy})")
    return notes


def _engine_notes(ratios: Sequence[StartRatio]) -> list[str]:
    """Where the two stacks' warm starts differ beyond their interval, something other than
    fetching the image does: the engines (optimized runs more API servers), or the file system
    they read (a lazy image is read through its mount even when every block is on the node).
    The first answer's ratio carries that too; the image's part leaves it out."""
    notes = []
    for warm in ratios:
        if warm.phase != "total_s" or warm.cache != "warm" or warm.ci_low is None:
            continue
        if warm.ci_low <= 1 <= (warm.ci_high or math.inf):
            continue
        part = next((r for r in ratios if r.phase == IMAGE_PART and r.eager == warm.eager
                     and r.lazy == warm.lazy), None)
        said = ("not compared: a trial's cold start took no longer than its warm one"
                if part is None else f"{part.value:.2f}×" + (
                    "" if part.ci_low is None or part.ci_high is None
                    else f" [{part.ci_low:.2f}, {part.ci_high:.2f}]"))
        notes.append(f"{warm.eager} ÷ {warm.lazy}: the warm starts differ ({warm.value:.2f}× "
                     f"[{warm.ci_low:.2f}, {warm.ci_high:.2f}]: the engines, or the file "
                     f"system they read), so the cold first answer's ratio carries that too; "
                     f"{PHASE_LABELS[IMAGE_PART]}: {said}")
    return notes
