from __future__ import annotations

import numpy as np
import pytest

from harness.workload.arrivals import Segment, arrival_offsets


def offsets(segments: list[Segment], process: str = "poisson", seed: int = 0) -> np.ndarray:
    return arrival_offsets(segments, process, np.random.default_rng(seed))  # type: ignore[arg-type]


def test_constant_steady_rate_is_evenly_spaced() -> None:
    sent = offsets([Segment(10, 10, 2)], "constant")
    assert np.allclose(sent, np.arange(20) / 10)


def test_constant_ramp_follows_the_integrated_rate() -> None:
    # rate(t) = 10 t over 10 s: 500 requests in all, Λ(5) = 125 of them in the first half.
    sent = offsets([Segment(0, 100, 10)], "constant")
    assert len(sent) == 500
    assert int((sent < 5).sum()) == 125
    assert sent[0] == 0


def test_step_changes_the_spacing_at_the_boundary() -> None:
    sent = offsets([Segment(2, 2, 2), Segment(10, 10, 1)], "constant")
    assert np.allclose(sent, [0, 0.5, 1.0, 1.5, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 2.8,
                              2.9])


def test_poisson_count_and_gaps_match_the_rate() -> None:
    sent = offsets([Segment(200, 200, 100)])
    # 20,000 expected; Poisson sd ~141, so ±600 is over 4 sd.
    assert abs(len(sent) - 20_000) < 600
    gaps = np.diff(sent)
    assert gaps.mean() == pytest.approx(1 / 200, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)  # exponential gaps: CV 1


def test_poisson_spike_puts_the_extra_load_in_the_spike() -> None:
    sent = offsets([Segment(50, 50, 20), Segment(500, 500, 2), Segment(50, 50, 20)], seed=3)
    in_spike = ((sent >= 20) & (sent < 22)).sum()
    assert abs(in_spike - 1000) < 150  # sd ~32
    assert abs(((sent >= 0) & (sent < 20)).sum() - 1000) < 150


def test_same_seed_same_offsets_other_seed_other_offsets() -> None:
    segments = [Segment(20, 60, 30)]
    assert np.array_equal(offsets(segments, seed=7), offsets(segments, seed=7))
    assert not np.array_equal(offsets(segments, seed=7), offsets(segments, seed=8))


def test_offsets_are_ordered_and_inside_the_run() -> None:
    sent = offsets([Segment(5, 0, 4), Segment(0, 0, 3), Segment(0, 40, 4)], seed=1)
    assert np.all(np.diff(sent) >= 0)
    assert sent.min() >= 0
    assert sent.max() < 11
    assert not ((sent > 4) & (sent < 7)).any()  # a zero-rate stretch sends nothing


def test_bad_segments_and_processes_are_refused() -> None:
    with pytest.raises(ValueError, match="rates must be >= 0"):
        Segment(-1, 5, 1)
    with pytest.raises(ValueError, match="lasts > 0 s"):
        Segment(1, 1, 0)
    with pytest.raises(ValueError, match="known: poisson, constant"):
        offsets([Segment(1, 1, 1)], "bursty")
