"""The dashboard's table: units, ratios to the baseline, and who wins."""

from __future__ import annotations

import math

import pytest

from dashboard.comparison import TIE, ablation_frame, comparison_frame, winner
from harness.metrics import ratios

STACKS = {
    "diy": {"throughput_qps": 750.0, "latency_p50_s": 0.2, "latency_p99_s": 0.9,
            "latency_p999_s": 1.5, "success_rate": 0.999, "goodput_qps": 700.0},
    "optimized": {"throughput_qps": 1200.0, "latency_p50_s": 0.201, "latency_p99_s": 0.6,
                  "latency_p999_s": None, "success_rate": 0.9999, "goodput_qps": 1190.0},
}
# As `harness run` writes it: the ratios come from harness.metrics, the dashboard only shows them.
SUMMARY = {"baseline": "diy", "stacks": STACKS, "ratios": ratios(STACKS, "diy")}


def test_table_shows_units_ratios_and_winners() -> None:
    table = comparison_frame(SUMMARY).set_index("metric")
    assert table.loc["throughput", "optimized ÷ diy"] == pytest.approx(1.6)
    assert table.loc["throughput", "winner"] == "optimized"
    assert table.loc["latency P99", "diy"] == pytest.approx(900.0)  # shown in ms
    assert table.loc["latency P99", "winner"] == "optimized"  # lower is better
    assert table.loc["latency P50", "winner"] == TIE  # 0.5 % apart: noise, not a win
    assert table.loc["success rate", "optimized"] == pytest.approx(99.99)  # shown in %
    assert math.isnan(table.loc["latency P99.9", "optimized"])
    assert table.loc["latency P99.9", "winner"] == "–"  # one stack has no value


def test_winner_needs_a_margin_and_handles_zero() -> None:
    assert winner({"a": 0.0, "b": 0.0}, higher_is_better=True) == TIE
    assert winner({"a": 100.0, "b": 103.0}, higher_is_better=True) == "b"
    assert winner({"a": 100.0, "b": 101.0}, higher_is_better=True) == TIE


def test_ablation_rows_name_each_optimization() -> None:
    assert ablation_frame(SUMMARY) is None
    summary = {**SUMMARY, "ablation": {"stack": "optimized", "contributions": {
        "w8a8": {"variant": "optimized-no-w8a8", "throughput_qps": 1.3, "goodput_qps": 1.2,
                 "latency_p50_s": 0.9, "latency_p99_s": 0.8, "success_rate": 1.0}}}}
    frame = ablation_frame(summary)
    assert frame is not None
    row = frame.iloc[0]
    assert row["optimization"] == "W8A8 per-channel weights"
    assert row["throughput ×"] == 1.3
    assert row["P99 ×"] == 0.8
