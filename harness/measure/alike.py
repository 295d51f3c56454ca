"""When two stacks are alike, as a decision rather than a failure to decide.

An interval of stack ÷ baseline that includes 1 can mean two things: the stacks differ by less
than anyone would care about, or the measurement is too coarse to tell. They are told apart by
an equivalence margin fixed before measuring (two one-sided tests, Schuirmann 1987): where the
whole interval lies within [1 / (1 + margin), 1 + margin], the stacks are alike to within the
margin at the interval's confidence. The margin is ±10 %, under the smallest gain the
optimizations compared here are expected to bring (+20 % to +60 % per pod)."""

from __future__ import annotations

import math

ALIKE_MARGIN = 0.10


def within_margin(low: float | None, high: float | None, margin: float = ALIKE_MARGIN) -> bool:
    """Whether a ratio's interval lies wholly within ±margin of 1 (an open bound never does)."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return False
    return 1 / (1 + margin) <= low and high <= 1 + margin


def margin_words(margin: float = ALIKE_MARGIN) -> str:
    return f"within ±{margin:.0%}"


def in_practice_words(margin: float = ALIKE_MARGIN) -> str:
    """What a winner's verdict adds when it wins by less than the margin."""
    return f", by less than {margin:.0%} (alike in practice)"
