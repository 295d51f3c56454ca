"""Cold-start figures from the start records: each phase's mean over trials with its Student-t
interval, per stack and cache state, and the eager ÷ lazy ratios of the phases, paired by
trial (a trial's two stacks started back to back, in alternating order), with the t interval
on the logs of the paired ratios (`harness.experiments.capacity.stats`)."""

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
        if not paired:
            continue
        for phase in RATIO_PHASES:
            top = [float(getattr(mine, phase)) for mine, _ in paired]
            bottom = [float(getattr(theirs, phase)) for _, theirs in paired]
            if min(top + bottom) <= 0:
                continue
            interval = ratio_interval(top, bottom)
            ratios.append(StartRatio(phase=phase, cache=cache, eager=eager, lazy=lazy,
                                     value=interval.value, ci_low=interval.low,
                                     ci_high=interval.high, goal=GOALS.get((phase, cache)),
                                     method=interval.method))
    return ratios


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
