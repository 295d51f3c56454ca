"""Metrics from hand-built records equal values computed by hand."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from harness.measure.metrics import (
    Window,
    error_timeline,
    latency_cdf,
    over_slo,
    per_second,
    ratios,
    success_lower_bound,
    summarize,
)
from harness.measure.records import DTYPES
from harness.report.results import StackFigures


def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    defaults = {"first_byte_s": None, "status": 200, "ok": True, "error": None,
                "prompt_tokens": 50, "output_tokens": 10, "replica": "r0"}
    return pd.DataFrame([{**defaults, **row} for row in rows]).astype(DTYPES)


# Window [10, 20) by scheduled time. Rows, with end-to-end (done - scheduled) and service
# (done - sent) latency:
#   0: warm-up (scheduled 9) — excluded everywhere except throughput's completion count rule
#   1: e2e 1.0, service 0.5, lag 0.5
#   2: e2e 2.0, service 2.0
#   3: e2e 3.0, service 1.0, lag 2.0
#   4: e2e 4.0, service 4.0
#   5: failed (http_503)
#   6: scheduled 19.5, finishes at 21 (outside the window: not in throughput)
RECORDS = frame([
    {"index": 0, "scheduled_s": 9.0, "sent_s": 9.0, "done_s": 10.5},
    {"index": 1, "scheduled_s": 10.0, "sent_s": 10.5, "done_s": 11.0, "replica": "r0"},
    {"index": 2, "scheduled_s": 11.0, "sent_s": 11.0, "done_s": 13.0, "replica": "r1"},
    {"index": 3, "scheduled_s": 12.0, "sent_s": 14.0, "done_s": 15.0, "replica": "r0"},
    {"index": 4, "scheduled_s": 13.0, "sent_s": 13.0, "done_s": 17.0, "replica": "r1"},
    {"index": 5, "scheduled_s": 14.0, "sent_s": 14.0, "done_s": 14.1, "status": 503,
     "ok": False, "error": "http_503", "output_tokens": None, "replica": "r1"},
    {"index": 6, "scheduled_s": 19.5, "sent_s": 19.5, "done_s": 21.0, "replica": "r0"},
])
WINDOW = Window(start_s=10.0, length_s=10.0)


def test_counts_rates_and_throughput() -> None:
    summary = summarize(RECORDS, WINDOW, slo_s=2.0, stream=False)
    assert summary["requests"] == 6  # indices 1-6
    assert summary["ok_requests"] == 5
    assert summary["success_rate"] == pytest.approx(5 / 6)
    assert summary["offered_qps"] == pytest.approx(0.6)
    # Finished ok inside [10, 20): indices 0 (done 10.5), 1, 2, 3, 4 -> 5 in 10 s.
    assert summary["throughput_qps"] == pytest.approx(0.5)
    # Of those, within 2 s end to end: index 1 (1.0) and 2 (2.0); index 0 took 1.5 -> 3.
    assert summary["goodput_qps"] == pytest.approx(0.3)
    assert summary["output_tokens_per_s"] == pytest.approx(5.0)
    assert summary["errors"] == {"http_503": 1}


def test_latency_percentiles_are_exact_linear_quantiles() -> None:
    summary = summarize(RECORDS, WINDOW, slo_s=2.0, stream=False)
    # End to end over ok in-window requests: [1, 2, 3, 4, 1.5] -> sorted [1, 1.5, 2, 3, 4].
    # Linear: P50 at rank 2 -> 2.0; P90 at rank 3.6 -> 3 + 0.6 = 3.6; P99 at 3.96 -> 3.96.
    assert summary["latency_count"] == 5
    assert summary["latency_p50_s"] == pytest.approx(2.0)
    assert summary["latency_p90_s"] == pytest.approx(3.6)
    assert summary["latency_p99_s"] == pytest.approx(3.96)
    assert summary["latency_p999_s"] == pytest.approx(3.996)
    assert summary["latency_mean_s"] == pytest.approx(2.3)
    # Service over the same requests: [0.5, 2.0, 1.0, 4.0, 1.5] -> sorted [0.5, 1, 1.5, 2, 4].
    assert summary["service_p50_s"] == pytest.approx(1.5)
    assert summary["service_p99_s"] == pytest.approx(2.0 + 0.96 * 2.0)


def test_send_lag_and_replica_share() -> None:
    summary = summarize(RECORDS, WINDOW, slo_s=2.0, stream=False)
    # Lags of the six in-window sends: [0.5, 0, 2, 0, 0, 0] -> sorted [0, 0, 0, 0, 0.5, 2].
    assert summary["send_lag_p50_s"] == pytest.approx(0.0)
    assert summary["send_lag_p99_s"] == pytest.approx(0.5 + 0.95 * 1.5)
    assert summary["send_lag_max_s"] == pytest.approx(2.0)
    assert summary["replica_share"] == {"r0": pytest.approx(0.5), "r1": pytest.approx(0.5)}


def test_ttft_only_for_streams() -> None:
    streamed = RECORDS.assign(first_byte_s=RECORDS["sent_s"] + 0.25)
    assert "ttft_p50_s" not in summarize(streamed, WINDOW, slo_s=2.0, stream=False)
    summary = summarize(streamed, WINDOW, slo_s=2.0, stream=True)
    assert summary["ttft_p50_s"] == pytest.approx(0.25)
    assert summary["ttft_count"] == 5


def test_trials_pool_records_and_divide_by_all_windows() -> None:
    two = pd.concat([RECORDS.assign(trial=1), RECORDS.assign(trial=2)], ignore_index=True)
    summary = summarize(two, WINDOW, slo_s=2.0, stream=False)
    assert summary["trials"] == 2
    assert summary["requests"] == 12
    assert summary["throughput_qps"] == pytest.approx(0.5)
    assert summary["latency_p50_s"] == pytest.approx(2.0)


def test_empty_series_are_nan_with_a_zero_count() -> None:
    failed = RECORDS.assign(ok=False, error="timeout")
    summary = summarize(failed, WINDOW, slo_s=2.0, stream=False)
    assert summary["success_rate"] == 0.0
    assert summary["latency_count"] == 0
    assert math.isnan(summary["latency_p99_s"])
    written = json.loads(StackFigures.model_validate(summary).to_json())
    assert written["latency_p99_s"] is None  # JSON has no NaN: null, beside its count 0


def test_ratios_divide_by_the_baseline() -> None:
    base = {"throughput_qps": 100.0, "latency_p99_s": 0.5, "success_rate": 1.0}
    other = {"throughput_qps": 160.0, "latency_p99_s": 0.25, "success_rate": 1.0}
    result = ratios({"diy": base, "optimized": other}, "diy")
    assert result == {"optimized": {"throughput_qps": pytest.approx(1.6),
                                    "success_rate": pytest.approx(1.0),
                                    "latency_p99_s": pytest.approx(0.5)}}
    assert math.isnan(ratios({"a": {"throughput_qps": 0.0}, "b": {"throughput_qps": 1.0}},
                             "a")["b"]["throughput_qps"])


def test_per_second_series_by_hand() -> None:
    series = per_second(RECORDS, WINDOW).set_index("second")
    assert list(series.index) == list(range(10, 20))
    # Scheduled in [10, 20): one request in each of seconds 10-14 and 19.
    assert series["offered_qps"].to_dict() == {10: 1, 11: 1, 12: 1, 13: 1, 14: 1, 15: 0,
                                               16: 0, 17: 0, 18: 0, 19: 1}
    # Finished ok in [10, 20), by second of done_s: 10.5, 11.0, 13.0, 15.0, 17.0.
    assert series["throughput_qps"][series["throughput_qps"] > 0].to_dict() == {
        10: 1, 11: 1, 13: 1, 15: 1, 17: 1}
    # P99 of one value is that value; a second with no success has none.
    p99 = series["latency_p99_s"]
    assert p99[[10, 11, 12, 13, 19]].tolist() == [1.0, 2.0, 3.0, 4.0, 1.5]
    assert p99[[14, 15, 16, 17, 18]].isna().all()
    assert series["errors"][series["errors"] > 0].to_dict() == {14: 1}


def test_per_second_divides_counts_by_trials() -> None:
    both = pd.concat([RECORDS.assign(trial=1), RECORDS.assign(trial=2)], ignore_index=True)
    series = per_second(both, WINDOW).set_index("second")
    assert series.loc[10, "offered_qps"] == 1
    assert series.loc[13, "throughput_qps"] == 1
    assert series.loc[14, "errors"] == 1


def test_error_timeline_and_latency_cdf_by_hand() -> None:
    timeline = error_timeline(RECORDS, WINDOW)
    assert timeline.to_dict("records") == [{"second": 14, "error": "http_503", "count": 1.0}]
    cdf = latency_cdf(RECORDS, WINDOW)
    assert cdf["latency_s"].tolist() == [1.0, 1.5, 2.0, 3.0, 4.0]
    assert cdf["fraction"].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])


def test_the_success_rates_lower_bound_is_exact_and_follows_the_rule_of_three() -> None:
    # No failure in n: the one-sided 95 % bound solves p^n = 0.05, about 1 - 3/n.
    assert success_lower_bound(3000, 3000) == pytest.approx(0.05 ** (1 / 3000))
    assert success_lower_bound(3000, 3000) == pytest.approx(1 - 3 / 3000, abs=2e-6)
    assert success_lower_bound(30_000, 30_000) > 0.9999 > success_lower_bound(20_000, 20_000)
    # One failure in 10: the bound solves P(X >= 9 | p) = 0.05, i.e. 10 p^9 - 9 p^10 = 0.05.
    bound = success_lower_bound(9, 10)
    assert 10 * bound ** 9 - 9 * bound ** 10 == pytest.approx(0.05)
    assert success_lower_bound(0, 10) == 0.0
    assert math.isnan(success_lower_bound(0, 0))


@pytest.mark.parametrize(("n", "allowed"), [(1, 0), (100, 0), (101, 1), (200, 1), (201, 2),
                                            (1001, 10)])
def test_how_many_requests_may_be_over_the_slo_for_p99_to_hold(n: int, allowed: int) -> None:
    # `allowed` requests far over the SLO keep the P99 within it; one more breaks it.
    for over, holds in ((allowed, True), (allowed + 1, False)):
        latency = pd.Series([0.5] * (n - over) + [60.0] * over)
        figures = over_slo(latency, slo_s=1.0)
        assert figures == {"latency_over_slo": over, "latency_over_slo_allowed": allowed}
        assert (float(latency.quantile(0.99)) <= 1.0) == holds
