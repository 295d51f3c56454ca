"""Agreement between greedy answers, computed by hand."""

from __future__ import annotations

import math

import pytest

from harness.experiments.quality import Answer, compare

BASE = [Answer(["a", "b", "c", "d"], [-0.1, -0.2, -0.3, -0.4]),
        Answer(["x", "y"], [-1.0, -2.0])]


def test_identical_answers_agree_fully() -> None:
    result = compare(BASE, BASE, "same", "base", min_agreement=1.0, max_logprob_diff=math.inf)
    assert result.token_agreement == 1.0
    assert result.exact_match_rate == 1.0
    assert result.first_divergence_mean == 3.0  # (4 + 2) / 2: answers' lengths
    assert result.logprob_diff_max == 0.0
    assert result.passed


def test_a_divergence_ends_agreement_for_the_rest_of_the_answer() -> None:
    other = [Answer(["a", "b", "z", "d"], [-0.15, -0.2, -0.9, -0.4]),  # differs at 2
             Answer(["q", "y"], [-1.0, -2.0])]  # differs at 0
    result = compare(BASE, other, "other", "base", min_agreement=0.3, max_logprob_diff=1.0)
    # Agreeing positions: a, b of the first answer (d after the divergence does not count).
    assert result.token_agreement == pytest.approx(2 / 6)
    assert result.exact_match_rate == 0.0
    assert (result.first_divergence_mean, result.first_divergence_min) == (1.0, 0)
    assert result.logprob_diff_mean == pytest.approx(0.025)  # |−0.1+0.15|, |−0.2+0.2|
    assert result.logprob_diff_max == pytest.approx(0.05)
    assert result.passed  # 33 % ≥ 30 % and 0.05 ≤ 1.0


def test_the_verdict_follows_both_thresholds() -> None:
    other = [Answer(["a", "b", "c", "d"], [-0.1, -0.2, -0.3, -0.9]),
             Answer(["x", "y"], [-1.0, -2.0])]
    assert compare(BASE, other, "o", "b", 1.0, math.inf).passed
    assert not compare(BASE, other, "o", "b", 1.0, 0.4).passed  # |Δ| 0.5 at "d"
    shorter = [Answer(["a", "b"], [-0.1, -0.2]), Answer(["x", "y"], [-1.0, -2.0])]
    assert not compare(BASE, shorter, "o", "b", 1.0, math.inf).passed  # stopped early
