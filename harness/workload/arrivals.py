"""Send times of an open-loop workload, precomputed from a seed.

The offered rate over the run is a list of `Segment`s, each linear from `start_qps` to
`end_qps` over `duration_s` (a steady stage has both equal; a ramp differs; steps and spikes are
several segments). Arrivals are placed by inverting the cumulative rate Λ(t) = ∫ rate:

- `poisson`: the k-th send is where Λ reaches the k-th point of a unit-rate Poisson process
  (a sum of Exp(1) draws) — a non-homogeneous Poisson process by time rescaling;
- `constant`: the k-th send is where Λ reaches k, so a steady 10 QPS sends at 0.0, 0.1, 0.2 s...

Same segments, process and seed give the same offsets on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

ArrivalProcess = Literal["poisson", "constant"]


@dataclass(frozen=True, slots=True)
class Segment:
    start_qps: float
    end_qps: float
    duration_s: float

    def __post_init__(self) -> None:
        if self.start_qps < 0 or self.end_qps < 0:
            raise ValueError(f"rates must be >= 0 QPS, got {self.start_qps}, {self.end_qps}")
        if self.duration_s <= 0:
            raise ValueError(f"a segment lasts > 0 s, got {self.duration_s}")

    @property
    def expected_requests(self) -> float:
        return (self.start_qps + self.end_qps) / 2 * self.duration_s

    def time_at(self, requests: np.ndarray) -> np.ndarray:
        """Offsets within the segment where its cumulative rate reaches `requests`."""
        a, slope = self.start_qps, (self.end_qps - self.start_qps) / self.duration_s
        # Solves a*t + slope*t²/2 = y; this form stays exact when slope is 0 or a is 0. The
        # denominator is 0 only for y = 0 at a ramp from 0 QPS, whose answer is t = 0.
        denominator = a + np.sqrt(a * a + 2 * slope * requests)
        times = np.zeros_like(requests)
        np.divide(2 * requests, denominator, out=times, where=denominator > 0)
        return times


def arrival_offsets(segments: Sequence[Segment], process: ArrivalProcess,
                    rng: np.random.Generator) -> np.ndarray:
    """Send offsets in seconds from the start of the run, ascending, all before its end."""
    if not segments:
        raise ValueError("a workload needs at least one rate segment")
    totals = np.array([segment.expected_requests for segment in segments])
    boundaries = np.concatenate([[0.0], np.cumsum(totals)])
    targets = _unit_events(process, float(boundaries[-1]), rng)
    offsets = np.empty_like(targets)
    starts = np.concatenate([[0.0], np.cumsum([s.duration_s for s in segments])])
    which = np.searchsorted(boundaries, targets, side="right") - 1
    for index, segment in enumerate(segments):
        mask = which == index
        if mask.any():
            offsets[mask] = starts[index] + segment.time_at(targets[mask] - boundaries[index])
    return offsets


def _unit_events(process: ArrivalProcess, total: float, rng: np.random.Generator) -> np.ndarray:
    """Points of a unit-rate process on [0, total): where the k-th request falls in Λ units."""
    if process == "constant":
        return np.arange(int(np.ceil(total)), dtype=np.float64)
    if process != "poisson":
        raise ValueError(f"unknown arrival process {process!r}; known: poisson, constant")
    # Draw in blocks sized to the expected count so one call nearly always suffices.
    block = int(total + 6 * np.sqrt(total) + 16)
    points = np.cumsum(rng.exponential(1.0, block))
    while points[-1] < total:
        points = np.concatenate([points, points[-1] + np.cumsum(rng.exponential(1.0, block))])
    return points[points < total]
