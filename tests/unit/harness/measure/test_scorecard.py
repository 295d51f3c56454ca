"""The scorecard's intervals and verdicts: the order-statistic interval of a P99 covers the true
quantile as often as it promises and has no upper bound on too few requests; Clopper–Pearson
matches its closed forms; a row names a winner only where the intervals do not overlap; a
folder's rows are rebuilt from what its phases wrote, and missing parts are listed as pending."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.experiments.scorecard_summary import scorecard_from_folder
from harness.measure.metrics import Window, quantile_interval, success_interval
from harness.measure.records import DTYPES
from harness.measure.scorecard import (
    RowContext,
    capacity_row,
    near_capacity,
    p99_at_load_row,
    send_lag_check,
    success_under_kill_row,
)
from harness.report.results import CapacitySummary
from harness.report.scorecard_tables import scorecard_table, send_lag_words, verdict_cell

CONTEXT = RowContext("4 QPS", "load", "diy")


def records(latencies: list[float], failed: int = 0, trials: int = 1) -> pd.DataFrame:
    """Requests scheduled 1 s apart from 10 s on, with these end-to-end latencies, then
    `failed` failures; spread over `trials` trials in turn."""
    rows = [{"index": i, "scheduled_s": 10.0 + i, "sent_s": 10.0 + i, "done_s": 10.0 + i + x,
             "ok": True} for i, x in enumerate(latencies)]
    rows += [{"index": len(rows) + i, "scheduled_s": 10.0 + len(rows) + i, "sent_s": None,
              "done_s": None, "ok": False, "error": "connection"} for i in range(failed)]
    defaults = {"first_byte_s": None, "status": 200, "error": None, "prompt_tokens": 50,
                "output_tokens": 10, "replica": "r0"}
    frame = pd.DataFrame([{**defaults, **row} for row in rows]).astype(DTYPES)
    return frame.assign(trial=[1 + index % trials for index in range(len(frame))])


WINDOW = Window(10.0, 100_000.0)


def test_the_p99_interval_covers_the_true_quantile_as_often_as_it_promises() -> None:
    rng = np.random.default_rng(7)
    true_p99 = -math.log(0.01)  # of an exponential with mean 1
    covered = []
    for _ in range(400):
        low, high = quantile_interval(rng.exponential(size=600), 0.99)
        covered.append(low <= true_p99 <= high)
    assert np.mean(covered) >= 0.93  # 95 % promised; order statistics give a little more


@pytest.mark.parametrize("n", [368, 400, 700, 1000])
def test_the_p99_interval_s_ranks_are_the_binomial_law_s(n: int) -> None:
    # Brute force: the largest l with P(B < l) ≤ 2.5 % and the smallest u with P(B ≥ u) ≤
    # 2.5 %, B ~ Binomial(n, 0.99), as 1-based ranks of the sorted values 1..n.
    cdf = np.cumsum([math.comb(n, k) * 0.99 ** k * 0.01 ** (n - k) for k in range(n + 1)])
    lower = max(k for k in range(1, n + 1) if cdf[k - 1] <= 0.025)
    upper = min(k for k in range(1, n + 1) if 1 - cdf[k - 1] <= 0.025)
    low, high = quantile_interval(np.arange(1.0, n + 1.0), 0.99)
    # Ours may be one rank wider on either side (scipy's ppf is a ≥ quantile), never narrower.
    assert lower - 1 <= low <= lower
    assert upper <= high <= upper + 1


def test_the_p99_has_no_upper_bound_until_enough_requests_lie_above_it() -> None:
    # 367 values: 0.99^367 = 2.501 %, just above the 2.5 % tail; 368: 2.48 %, below it.
    assert math.isnan(quantile_interval(np.arange(1.0, 368.0), 0.99)[1])
    assert quantile_interval(np.arange(1.0, 369.0), 0.99)[1] == 368.0
    low, high = quantile_interval(np.arange(1.0, 401.0), 0.99)
    assert low < np.quantile(np.arange(1.0, 401.0), 0.99) < high <= 400.0
    assert quantile_interval(np.array([]), 0.99) == (pytest.approx(math.nan, nan_ok=True),
                                                    pytest.approx(math.nan, nan_ok=True))


def test_clopper_pearson_matches_its_closed_forms() -> None:
    # No success in n: the upper end is 1 - (tail)^(1/n); all n: the lower end is tail^(1/n).
    assert success_interval(0, 5) == pytest.approx((0.0, 1 - 0.025 ** (1 / 5)))
    assert success_interval(90, 90) == pytest.approx((0.025 ** (1 / 90), 1.0))
    low, high = success_interval(54, 90)
    assert low < 54 / 90 < high
    assert all(math.isnan(bound) for bound in success_interval(0, 0))


def test_a_row_names_a_winner_only_where_the_intervals_do_not_overlap() -> None:
    fast = records([0.2] * 396 + [0.3] * 4)
    slow = records([1.5] * 396 + [2.0] * 4)
    row = p99_at_load_row({"diy": slow, "optimized": fast}, WINDOW, 1.0, CONTEXT)
    assert row.winner == "optimized"
    assert row.verdict.startswith("optimized lower")
    # numpy's P99 of 400: 1 % of the way from the 396th value to the 397th.
    assert row.ratio == pytest.approx(0.201 / 1.505)
    assert row.stacks["diy"].requests == 400
    assert row.stacks["diy"].note.startswith("400 of 400 successes over the 1,000 ms SLO")
    # The same stack twice: the intervals overlap.
    tie = p99_at_load_row({"diy": fast, "optimized": fast}, WINDOW, 1.0, CONTEXT)
    assert tie.winner is None
    assert tie.verdict.startswith("too close to call: the intervals overlap")


def test_a_fixed_load_near_a_stack_s_capacity_is_said_with_the_load_that_would_not_be() -> None:
    fast = records([0.2] * 400)
    slow = records([1.5] * 400)
    row = p99_at_load_row({"diy": slow, "optimized": fast}, WINDOW, 1.0, CONTEXT)
    # Well below both capacities: the row is left as it was.
    assert near_capacity(row, 64.0, {"diy": 128.0, "optimized": 130.0}) == row
    # At the capacity of one (80 % is the edge); one without a measured capacity is skipped.
    said = near_capacity(row, 64.0, {"diy": 80.0, "optimized": None})
    assert said.winner == row.winner == "optimized"  # a caveat, not a different verdict
    assert said.verdict.startswith(row.verdict)
    assert said.verdict.endswith("the fixed load, 64 QPS, is 80% of diy's (80.0 QPS) capacity "
                                 "found here: near capacity a P99 rests on how close to its "
                                 "limit each stack runs more than on its speed; for a P99 well "
                                 "below capacity, rerun with --load-qps 40")
    both = near_capacity(row, 64.0, {"diy": 63.0, "optimized": 56.4})
    assert "102% of diy's (63.0 QPS) and 113% of optimized's (56.4 QPS)" in both.verdict
    assert both.verdict.endswith("--load-qps 28")


def test_trials_that_interleave_leave_the_row_undecided() -> None:
    # Pooled, the intervals are far apart; by trial, diy's slow second trial is slower than
    # optimized's: the stacks differ less than the trials drift.
    diy = pd.concat([records([0.2] * 400).assign(trial=1),
                     records([0.9] * 400).assign(trial=2)], ignore_index=True)
    optimized = records([0.5] * 400, trials=2)
    row = p99_at_load_row({"diy": diy, "optimized": optimized}, WINDOW, 1.0, CONTEXT)
    assert row.stacks["diy"].trials == pytest.approx([0.2, 0.9])
    assert row.winner is None
    assert row.verdict.startswith("too close to call: the intervals do not overlap but the "
                                  "trials do")
    assert "diy 200 ms, 900 ms; optimized 500 ms, 500 ms" in row.verdict


def test_stacks_within_the_margin_in_the_pool_and_in_every_trial_are_alike() -> None:
    diy = records(list(np.linspace(0.20, 0.30, 1200)), trials=3)
    optimized = records(list(np.linspace(0.20, 0.30, 1200) * 1.003), trials=3)
    row = p99_at_load_row({"diy": diy, "optimized": optimized}, WINDOW, 1.0, CONTEXT)
    assert row.winner is None
    assert row.alike
    assert row.verdict.startswith("alike, within ±10%")
    assert row.ratio_ci_low is not None
    assert row.ratio_ci_high is not None
    assert 1 / 1.1 <= row.ratio_ci_low <= row.ratio <= row.ratio_ci_high <= 1.1
    # The bounds are the two intervals divided.
    assert row.ratio_ci_low == pytest.approx(row.stacks["optimized"].ci_low
                                             / row.stacks["diy"].ci_high)
    assert "alike" in verdict_cell(row)


def test_a_winner_by_less_than_the_margin_is_named_and_said_to_be_alike_in_practice() -> None:
    # 1,200 requests each: a 2 % difference is beyond the requests' noise, and within ±10 %.
    diy = records(list(np.linspace(0.20, 0.30, 1200)), trials=3)
    optimized = records(list(np.linspace(0.20, 0.30, 1200) * 1.02), trials=3)
    row = p99_at_load_row({"diy": diy, "optimized": optimized}, WINDOW, 1.0, CONTEXT)
    assert row.winner == "diy"
    assert row.alike
    assert row.verdict.startswith("diy lower, by less than 10% (alike in practice)")


def test_stacks_alike_when_pooled_but_not_trial_by_trial_are_not_called_alike() -> None:
    # Pooled, the two are the same mixture; trial by trial they are 12 % apart each way.
    diy = pd.concat([records([0.25] * 400).assign(trial=1),
                     records([0.28] * 400).assign(trial=2)], ignore_index=True)
    optimized = pd.concat([records([0.28] * 400).assign(trial=1),
                           records([0.25] * 400).assign(trial=2)], ignore_index=True)
    row = p99_at_load_row({"diy": diy, "optimized": optimized}, WINDOW, 1.0, CONTEXT)
    assert row.ratio_ci_low == pytest.approx(1.0)
    assert row.ratio_ci_high == pytest.approx(1.0)
    assert not row.alike
    assert row.verdict.startswith("too close to call")


def test_a_wide_interval_that_includes_1_is_never_alike() -> None:
    # A long tail: the P99's interval spans 1.4–2.4 s, so the same stack twice is only "too
    # close to call", never "alike".
    tailed = records(list(np.linspace(0.1, 0.5, 390)) + [0.6 + 0.2 * i for i in range(10)])
    row = p99_at_load_row({"diy": tailed, "optimized": tailed}, WINDOW, 1.0, CONTEXT)
    assert row.ratio_ci_low is not None
    assert row.ratio_ci_low < 1 / 1.1
    assert not row.alike
    assert row.verdict.startswith("too close to call: the intervals overlap")


def test_success_rates_within_ten_percent_are_never_called_alike() -> None:
    # 95 % against 100 % over 1,000 requests each: 5 % of requests lost is not "alike".
    lossy = records([0.3] * 950, failed=50, trials=2)
    whole = records([0.3] * 1000, trials=2)
    row = success_under_kill_row({"diy": lossy, "optimized": whole}, WINDOW, CONTEXT)
    assert row.ratio_ci_high is not None
    assert row.ratio_ci_high < 1.1
    assert not row.alike
    assert row.winner == "optimized"
    assert "alike" not in row.verdict


def test_an_open_interval_never_decides() -> None:
    # 100 requests: no upper bound on either P99, so even far-apart stacks are not called.
    row = p99_at_load_row({"diy": records([2.0] * 100), "optimized": records([0.2] * 100)},
                          WINDOW, 1.0, CONTEXT)
    assert row.winner is None
    assert "an interval is open" in row.verdict
    assert "no upper bound under 368 successes" in row.stacks["diy"].note


def test_success_under_a_kill_counts_every_failure_and_keeps_each_trial() -> None:
    diy = records([0.3] * 54, failed=36, trials=2)
    optimized = records([0.3] * 90, trials=2)
    row = success_under_kill_row({"diy": diy, "optimized": optimized}, WINDOW, CONTEXT)
    assert row.stacks["diy"].value == pytest.approx(0.6)
    assert row.stacks["diy"].note == "36 of 90 failed"
    assert len(row.stacks["diy"].trials) == 2
    assert row.winner == "optimized"
    assert row.higher_is_better


def write_phase(folder: Path, stack: str, trial: int, phase: str, frame: pd.DataFrame) -> None:
    where = folder / stack / f"trial-{trial}" / phase
    where.mkdir(parents=True)
    frame.to_parquet(where / "records.parquet")


def test_a_folder_s_rows_come_from_its_phases_and_missing_parts_are_pending(
        tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({
        "stack_names": ["diy", "optimized"], "phase_warmup_s": 10.0, "load_qps": 4.0,
        "load_duration_s": 100_000.0, "kill_qps": 2.0, "kill_duration_s": 100_000.0,
        "kill_trials": 1, "kill_scenario": "replica_kill",
        "kill_scenario_name": "replica_kill"}))
    write_phase(tmp_path, "diy", 1, "load", records([0.4] * 400))
    write_phase(tmp_path, "optimized", 1, "load", records([0.5] * 400))
    write_phase(tmp_path, "diy", 2, "load", records([9.0] * 400))  # optimized's trial 2 never ran
    write_phase(tmp_path, "diy", 1, "kill", records([0.4] * 30))  # optimized's never ran
    capacity = CapacitySummary.model_validate({
        "run": tmp_path.name, "workload": "writing_assistant",
        "slo": {"p99_s": 1.0, "min_success": 0.9999},
        "search": {"start_qps": 4, "growth": 2, "tolerance": 0.15, "max_qps": 100,
                   "max_probes": 20, "duration_s": 10, "warmup_s": 2},
        "window": {"start_s": 2, "length_s": 10}, "trials": 1, "baseline": "diy",
        "stacks": {}, "ratio": None, "ratios": {}})
    card = scorecard_from_folder(tmp_path, capacity)
    assert [row.dimension for row in card.rows] == ["p99_at_load"]
    assert card.pending == ["capacity", "success_under_kill"]
    assert card.rows[0].setting == "4 QPS, 1 × 100000 s"
    table = scorecard_table(card)
    assert table.columns == ["dimension", "measured at", "diy [95% CI]",
                             "optimized [95% CI]", "optimized ÷ diy", "verdict",
                             "requests deciding"]
    assert [row[0] for row in table.rows] == ["P99 at a fixed load", "capacity at the SLO",
                                              "success under a replica kill"]
    assert table.rows[0][-1] == "400 / 400"  # diy's trial 2 is left out: optimized has none
    assert card.rows[0].stacks["diy"].value == pytest.approx(0.4)
    assert table.frame().iloc[1]["verdict"] == "pending"


def probe_row(rate: float, lag: float, service_p99: float, stopped: bool) -> dict[str, object]:
    return {"trial": 1, "probe": 1, "rate_qps": rate, "passed": False, "requests": 100,
            "ok_requests": 100, "failed_requests": 0, "offered_qps": rate,
            "throughput_qps": rate, "goodput_qps": rate, "success_rate": 1.0,
            "latency_p50_s": 0.5, "latency_p90_s": 1.0, "latency_p99_s": 1.5,
            "service_p99_s": service_p99,
            "send_lag_p99_s": lag, "errors": {}, "drained_s": 0.0,
            "stopped_early": "failing was certain" if stopped else None,
            "latency_over_slo": 5, "latency_over_slo_allowed": 1,
            "schedule_sha256": "0", "schedule": "s", "records": "r"}


def lag_capacity(*probes: dict[str, object]) -> CapacitySummary:
    stacks = {"optimized": {"replicas": 2, "trials": [], "status": "measured", "note": "",
                            "probes": list(probes), "capacity_qps": 100.0,
                            "per_replica_capacity_qps": 50.0, "ci_low": None, "ci_high": None,
                            "interval_method": None}} if probes else {}
    return CapacitySummary.model_validate({
        "run": "r", "workload": "w", "slo": {"p99_s": 1.0, "min_success": 0.9999},
        "search": {"start_qps": 4, "growth": 2, "tolerance": 0.05, "max_qps": 100,
                   "max_probes": 20, "duration_s": 10, "warmup_s": 2},
        "window": {"start_s": 2, "length_s": 10}, "trials": 1, "baseline": "diy",
        "stacks": stacks, "ratio": None, "ratios": {}})


def test_the_worst_send_lag_of_any_replay_judged_whole_is_named_and_held_to_its_limit() -> None:
    on_time = records([0.3] * 200, trials=2)
    late = on_time.assign(sent_s=on_time["scheduled_s"]
                          + np.where(on_time["trial"] == 2, 0.05, 0.0))
    lag = send_lag_check(lag_capacity(), {"load": ({"diy": on_time, "optimized": late},
                                                   WINDOW)}, 1.0)
    assert lag.worst_p99_s == pytest.approx(0.05)
    assert lag.worst_where == "optimized trial 2, load phase"
    assert lag.replays == 4
    said = send_lag_words(lag)
    assert said is not None
    assert not said[0]
    assert "over its 10 ms limit" in said[1]
    held = send_lag_check(lag_capacity(), {"load": ({"diy": on_time}, WINDOW)}, 1.0)
    assert send_lag_words(held) == (True, "load generator: send lag P99 at most 0.00 ms over "
                                          "the 2 replays judged whole (worst: diy trial 1, "
                                          "load phase), within its 10 ms limit")


def test_an_overloaded_probe_s_lag_counts_only_where_its_failure_could_rest_on_it() -> None:
    phases = {"load": ({"diy": records([0.3] * 200)}, WINDOW)}
    # Stopped early, 30 ms late, but 1.4 s from the actual send: it failed on its own.
    failed_anyway = send_lag_check(lag_capacity(probe_row(165, 0.030, 1.4, stopped=True)),
                                   phases, 1.0)
    assert failed_anyway.held
    assert failed_anyway.replays == 1  # the phase; the stopped probe is counted apart
    assert failed_anyway.overloaded_worst_p99_s == pytest.approx(0.030)
    said = send_lag_words(failed_anyway)
    assert said is not None
    assert "no verdict rests on it" in said[1]
    # Within the SLO from the actual send: the lag may have made it fail.
    maybe = send_lag_check(lag_capacity(probe_row(128, 0.030, 0.9, stopped=True)), phases, 1.0)
    assert maybe.overloaded_late == ["optimized trial 1, probe at 128 QPS"]
    assert not maybe.held
    # With nothing judged whole yet, the overloaded probe's lag is still said, as a failure.
    alone = send_lag_check(lag_capacity(probe_row(128, 0.030, 0.9, stopped=True)), {}, 1.0)
    said = send_lag_words(alone)
    assert said is not None
    assert not said[0]
    assert said[1].startswith("load generator: no replay judged whole yet; of the 1 probes")
    assert alone.overloaded == 1
    # A probe judged whole is held to the limit, whatever it measured.
    whole = send_lag_check(lag_capacity(probe_row(128, 0.030, 1.4, stopped=False)), phases, 1.0)
    assert whole.worst_where == "optimized trial 1, probe at 128 QPS"
    assert not whole.held


def test_capacity_names_no_winner_over_a_stack_with_only_a_lower_bound() -> None:
    def stack(status: str, capacity: float) -> dict[str, object]:
        return {"replicas": 2, "trials": [], "status": status, "note": "", "probes": [],
                "capacity_qps": capacity, "per_replica_capacity_qps": capacity / 2,
                "ci_low": capacity * 0.9, "ci_high": capacity * 1.1, "interval_method": "t"}

    def summary(optimized_status: str) -> CapacitySummary:
        return CapacitySummary.model_validate({
            "run": "r", "workload": "w", "slo": {"p99_s": 1.0, "min_success": 0.9999},
            "search": {"start_qps": 4, "growth": 2, "tolerance": 0.15, "max_qps": 100,
                       "max_probes": 20, "duration_s": 10, "warmup_s": 2},
            "window": {"start_s": 2, "length_s": 10}, "trials": 3, "baseline": "diy",
            "stacks": {"diy": stack("measured", 8.0), "optimized": stack(optimized_status, 4.0)},
            "ratio": {"stack": "optimized", "baseline": "diy", "value": 0.5, "ci_low": 0.4,
                      "ci_high": 0.6, "method": "t", "verdict": "diy serves more"},
            "ratios": {}})

    assert capacity_row(summary("measured"), CONTEXT).winner == "diy"
    # optimized never failed up to --max-qps: its capacity may be above diy's.
    assert capacity_row(summary("lower_bound"), CONTEXT).winner is None
