"""The capacity charts, drawn from a summary alone."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from harness.measure.metrics import finished_success
from harness.report.figures import capacity_figures
from harness.report.results import CapacitySummary, ProbeRow, Slo, StackCapacity


def probe(trial: int, number: int, rate: float, passed: bool, p99: float,
          stopped: int = 0) -> dict[str, Any]:
    return {"trial": trial, "probe": number, "rate_qps": rate, "passed": passed,
            "latency_p50_s": p99 / 3, "latency_p99_s": p99, "requests": 100,
            "ok_requests": 100 - stopped,
            "errors": {"stopped": stopped} if stopped else {},
            "stopped_early": "failing was certain" if stopped else None}


SUMMARY = {
    "slo": {"p99_s": 1.0, "min_success": 0.9999},
    "stacks": {
        "diy": {"replicas": 2, "capacity_qps": 6.0, "per_replica_capacity_qps": 3.0,
                "per_replica_ci_low": 2.5, "per_replica_ci_high": 3.5, "ci_low": 5.0,
                "ci_high": 7.0, "status": "measured",
                "probes": [probe(1, 1, 4, True, 0.5), probe(1, 2, 8, False, 2.0, stopped=60),
                           probe(1, 3, 6, True, 0.9), probe(2, 1, 4, True, 0.4)]},
        "broken": {"replicas": None, "capacity_qps": None, "ci_low": None, "ci_high": None,
                   "per_replica_capacity_qps": None,
                   "status": "fails_at_lowest_rate",
                   "probes": [probe(1, 1, 4, False, math.nan)]},
    },
}


def typed(summary: dict[str, Any]) -> CapacitySummary:
    """The summary as the figures read it (only the fields they use are set)."""
    return CapacitySummary.model_construct(slo=Slo(**summary["slo"]), stacks={
        name: StackCapacity.model_construct(**{**row, "probes": [
            ProbeRow.model_construct(**probe) for probe in row["probes"]]})
        for name, row in summary["stacks"].items()})


def test_a_stopped_probes_success_counts_only_what_it_finished() -> None:
    probes = pd.DataFrame(SUMMARY["stacks"]["diy"]["probes"])
    assert list(finished_success(probes)) == [1.0, 1.0, 1.0, 1.0]  # 40 of 40 finished, ok


def test_capacity_figures_draw_each_trial_with_the_slo() -> None:
    figures = capacity_figures(typed(SUMMARY))
    assert list(figures) == ["capacity", "latency_vs_load", "success_vs_load"]
    latency = figures["latency_vs_load"]
    p99 = [trace for trace in latency.data if trace.name == "diy P99"]
    assert len(p99) == 2  # one line per trial, one legend entry
    assert [trace.showlegend for trace in p99] == [True, False]
    assert list(p99[0].x) == [4, 6, 8]  # sorted by rate
    assert list(p99[0].y) == pytest.approx([500, 900, 2000])
    assert list(p99[0].marker.symbol) == ["circle", "circle", "x"]
    assert latency.layout.shapes[0].y0 == 1000  # the SLO, in ms
    bars = {trace.name: trace for trace in figures["capacity"].data}
    assert list(bars["diy"].y) == [3.0]  # per replica
    assert list(bars["diy"].error_y.array) == pytest.approx([0.5])
    assert list(bars["broken"].text) == ["fails at lowest rate"]
    assert figures["success_vs_load"].layout.shapes[0].y0 == pytest.approx(99.99)
