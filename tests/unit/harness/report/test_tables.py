"""The comparison table the CLI prints and the dashboard shows: units, ratios to the baseline,
and who wins, from a typed summary."""

from __future__ import annotations

from typing import Any

from harness.measure.metrics import ratios
from harness.report.results import ComparisonSummary
from harness.report.tables import NONE, TIE, ablation_table, comparison_table, headlines, winner


def figures(**overrides: Any) -> dict[str, Any]:
    base = {"trials": 1, "window_s": 10.0, "requests": 100, "ok_requests": 100,
            "failed_requests": 0, "success_rate": 1.0, "offered_qps": 10.0,
            "throughput_qps": 10.0, "goodput_qps": 10.0, "output_tokens_per_s": 500.0,
            "slo_s": 1.0, "latency_count": 100, "latency_p50_s": 0.2, "latency_p90_s": 0.5,
            "latency_p99_s": 0.9, "latency_p999_s": 1.5, "latency_mean_s": 0.3,
            "service_count": 100, "service_p50_s": 0.2, "service_p90_s": 0.5,
            "service_p99_s": 0.9, "service_p999_s": 1.0, "service_mean_s": 0.3,
            "send_lag_count": 100, "send_lag_p50_s": 0.0, "send_lag_p90_s": 0.0,
            "send_lag_p99_s": 0.001, "send_lag_p999_s": 0.001, "send_lag_mean_s": 0.0,
            "send_lag_max_s": 0.002, "errors": {}, "replica_share": {"replica-0": 1.0},
            "schedule_sha256": "abc", "records": "x/records"}
    return {**base, **overrides}


STACKS = {
    "diy": figures(throughput_qps=750.0, latency_p50_s=0.2, latency_p99_s=0.9,
                   latency_p999_s=1.5, success_rate=0.999, goodput_qps=700.0),
    "optimized": figures(throughput_qps=1200.0, latency_p50_s=0.201, latency_p99_s=0.6,
                         latency_p999_s=None, success_rate=0.9999, goodput_qps=1190.0),
}


def summary(**extra: Any) -> ComparisonSummary:
    # As `harness run` writes it: the ratios come from harness.measure.metrics.
    return ComparisonSummary.model_validate({
        "run": "r", "workload": "w", "schedule_sha256": "abc",
        "window": {"start_s": 1.0, "length_s": 10.0}, "baseline": "diy", "stacks": STACKS,
        "ratios": ratios(STACKS, "diy"), **extra})


def test_table_shows_units_ratios_and_winners() -> None:
    table = comparison_table(summary()).frame().set_index("metric")
    assert table.loc["throughput", "optimized ÷ diy"] == "1.60×"
    assert table.loc["throughput", "winner"] == "optimized"
    assert table.loc["latency P99", "diy"] == "900.0 ms"
    assert table.loc["latency P99", "winner"] == "optimized"  # lower is better
    assert table.loc["latency P50 (from schedule)", "winner"] == TIE  # 0.5 % apart: noise
    assert table.loc["success rate", "optimized"] == "99.990%"
    assert table.loc["requests measured", "winner"] == NONE  # context, not merit
    assert table.loc["latency P99.9", "optimized"] == NONE
    assert table.loc["latency P99.9", "winner"] == NONE  # one stack has no value
    assert "TTFT P50" not in table.index  # not a streamed workload


def test_headlines_give_the_change_from_the_baseline() -> None:
    throughput, p99, success = headlines(summary())
    assert throughput.label == "optimized: throughput"
    assert throughput.change == "+60.0 % vs diy"
    assert p99.value == "600.0 ms"
    assert p99.change == "-33.3 % vs diy"
    assert not p99.higher_is_better
    assert success.higher_is_better


def test_winner_needs_a_margin_and_handles_zero() -> None:
    assert winner({"a": 0.0, "b": 0.0}, higher_is_better=True) == TIE
    assert winner({"a": 100.0, "b": 103.0}, higher_is_better=True) == "b"
    assert winner({"a": 100.0, "b": 101.0}, higher_is_better=True) == TIE


def test_ablation_rows_name_each_optimization() -> None:
    assert ablation_table(summary()) is None
    table = ablation_table(summary(ablation={
        "stack": "optimized", "variants": {"w8a8": "optimized-no-w8a8"}, "contributions": {
            "w8a8": {"variant": "optimized-no-w8a8", "throughput_qps": 1.3, "goodput_qps": 1.2,
                     "latency_p50_s": 0.9, "latency_p99_s": 0.8, "success_rate": 1.0}}}))
    assert table is not None
    row = table.frame().iloc[0]
    assert row["optimization"] == "W8A8 per-channel weights"
    assert row["throughput ×"] == "1.30×"
    assert row["P99 ×"] == "0.80×"
