"""Cold-start figures from start records: means with intervals per stack and cache state, eager ÷
lazy ratios paired by trial, and notes that say where the engine's own start dominates."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats

from harness.measure.coldstart import summarize_starts
from harness.report.coldstart_results import ColdStartResult, RegistrySettings, StartRecord
from harness.report.coldstart_tables import coldstart_ratio_table, coldstart_table
from harness.report.figures import coldstart_bars


def start(stack: str, mode: str, trial: int, cache: str, image_s: float,
          engine_s: float) -> StartRecord:
    total = image_s + engine_s + 0.2
    fetched = 100 if mode == "eager" and cache == "cold" else (40 if cache == "cold" else 0)
    return StartRecord(stack=stack, mode=mode, trial=trial, cache=cache, image_s=image_s,
                       engine_s=engine_s, first_response_s=0.2, total_s=total,
                       bytes_fetched=fetched, image_bytes=100, fetched_fraction=fetched / 100)


STARTS = [record for trial, jitter in ((1, 0.0), (2, 1.0), (3, -1.0)) for record in (
    start("diy", "eager", trial, "cold", 30 + jitter, 35 + jitter),
    start("diy", "eager", trial, "warm", 0.01, 34 + jitter),
    start("optimized", "lazy", trial, "cold", 0.2, 50 + jitter),
    start("optimized", "lazy", trial, "warm", 0.01, 36 + jitter))]


def test_phases_are_means_over_trials_with_an_interval() -> None:
    summaries, _, _ = summarize_starts(STARTS)
    diy_cold = next(row for row in summaries if row.stack == "diy" and row.cache == "cold")
    assert diy_cold.phases["image_s"].value == pytest.approx(30.0)
    assert diy_cold.phases["image_s"].trials == [30.0, 31.0, 29.0]
    assert diy_cold.phases["image_s"].ci_low < 30 < diy_cold.phases["image_s"].ci_high
    assert diy_cold.fetched_fraction.value == pytest.approx(1.0)
    lazy_cold = next(row for row in summaries if row.stack == "optimized" and row.cache == "cold")
    assert lazy_cold.fetched_fraction.value == pytest.approx(0.4)


def test_ratios_pair_eager_with_lazy_by_trial_and_notes_judge_the_goals() -> None:
    _, ratios, notes = summarize_starts(STARTS)
    image = next(r for r in ratios if r.phase == "image_s" and r.cache == "cold")
    assert image.eager == "diy"
    assert image.lazy == "optimized"
    assert image.value == pytest.approx((30 * 31 * 29) ** (1 / 3) / 0.2)
    assert image.goal == 10
    total = next(r for r in ratios if r.phase == "total_s" and r.cache == "cold")
    assert total.value == pytest.approx(65.2 / 50.4, rel=0.01)
    assert any(note.startswith("goal image_s (cold)") and ": holds (" in note for note in notes)
    assert any(note.startswith("goal total_s (cold)") and "is missed" in note for note in notes)
    # The lazy stack's first answer waits on its engine: the note says so.
    assert any(note.startswith("optimized (lazy, cold): the engine's own start") for note in notes)


def test_the_images_part_takes_each_stacks_own_engine_start_out() -> None:
    _, ratios, notes = summarize_starts(STARTS)
    part = next(r for r in ratios if r.phase == "image_part_s")
    # Per trial, cold less warm: diy (30 + j) + (35 + j) − (0.01 + 34 + j), optimized
    # 0.2 + 50 + j − (0.01 + 36 + j): the jitter of each engine's start cancels.
    assert part.value == pytest.approx((30.99 * 31.99 * 29.99) ** (1 / 3) / 14.19)
    assert part.ci_low < part.value < part.ci_high
    # Warm, optimized's engine takes 2 s longer in every trial: a note says the first
    # answer's ratio carries the engines too, and gives the images' part.
    engines = [note for note in notes if "the warm starts differ" in note]
    assert len(engines) == 1
    assert f"{part.value:.2f}×" in engines[0]


def test_the_images_part_pairs_each_trial_with_the_same_trial() -> None:
    # The lazy stack's cold start takes 1, 2 or 3 s more by trial: paired by trial, the
    # ratios are 30.99 / 15.19, 31.99 / 16.19 and 29.99 / 17.19; another pairing gives
    # other bounds.
    slower = {1: 1.0, 2: 2.0, 3: 3.0}
    starts = [s.model_copy(update={"total_s": s.total_s + slower[s.trial]})
              if s.stack == "optimized" and s.cache == "cold" else s for s in STARTS]
    _, ratios, _ = summarize_starts(starts)
    part = next(r for r in ratios if r.phase == "image_part_s")
    paired = [30.99 / 15.19, 31.99 / 16.19, 29.99 / 17.19]
    logs = [math.log(value) for value in paired]
    mean, spread = statistics.mean(logs), statistics.stdev(logs) / math.sqrt(3)
    half = stats.t.ppf(0.975, 2) * spread
    assert part.value == pytest.approx(math.exp(mean))
    assert part.ci_low == pytest.approx(math.exp(mean - half))
    assert part.ci_high == pytest.approx(math.exp(mean + half))


def test_engines_alike_need_no_note_and_a_part_not_above_zero_is_not_compared() -> None:
    alike = [s.model_copy(update={"engine_s": s.engine_s - 2, "total_s": s.total_s - 2})
             if s.stack == "optimized" and s.cache == "warm" else s for s in STARTS]
    _, _, notes = summarize_starts(alike)
    assert not any("the warm starts differ" in note for note in notes)
    # A cold start as quick as its warm one leaves nothing of the image to compare.
    quick_cold = [s.model_copy(update={"total_s": 36.0}) if s.stack == "optimized" and
                  s.cache == "cold" and s.trial == 2 else s for s in STARTS]
    _, ratios, notes = summarize_starts(quick_cold)
    assert not any(r.phase == "image_part_s" for r in ratios)
    assert any("not compared" in note for note in notes)


def test_without_a_lazy_stack_there_is_no_ratio() -> None:
    _, ratios, _ = summarize_starts([s for s in STARTS if s.mode == "eager"])
    assert ratios == []


def test_the_report_renders_as_tables_and_a_stacked_bar() -> None:
    summaries, ratios, notes = summarize_starts(STARTS)
    result = ColdStartResult(run_id="r", stacks=["diy", "optimized"], trials=3,
                             registry=RegistrySettings(bandwidth_mbps=400, latency_ms=10),
                             images={}, starts=STARTS, summaries=summaries, ratios=ratios,
                             notes=notes)
    table = coldstart_table(result)
    assert [row[:2] for row in table.rows] == [["diy (eager)", "cold"], ["diy (eager)", "warm"],
                                               ["optimized (lazy)", "cold"],
                                               ["optimized (lazy)", "warm"]]
    assert table.rows[0][2].startswith("30.0 [")
    assert table.rows[2][2].startswith("0.20 [")  # short phases keep two decimals
    assert table.rows[2][-1] == "40.0%"
    ratio_table = coldstart_ratio_table(result)
    assert ratio_table is not None
    assert ratio_table.rows[0][:2] == ["diy ÷ optimized", "image fetch or mount"]
    figure = coldstart_bars(result)
    assert [trace.name for trace in figure.data][:3] == [
        "image fetch or mount", "engine start to /health", "/health to first completion"]


def test_each_lazy_stack_is_paired_with_the_eager_one_and_labelled_with_how_it_started() -> None:
    prefetching = [start("diy:lazy", "lazy", trial, cache, 0.2, 40.0).model_copy(
        update={"prefetch_blocks": 140, "file_system": "kernel"})
        for trial in (1, 2, 3) for cache in ("cold", "warm")]
    starts = [*STARTS, *prefetching]
    summaries, ratios, notes = summarize_starts(starts)
    totals = {r.lazy: r.value for r in ratios if r.phase == "total_s" and r.cache == "cold"}
    assert set(totals) == {"optimized", "diy:lazy"}
    assert totals["diy:lazy"] > totals["optimized"]  # 40 s against 50 s of engine
    result = ColdStartResult(run_id="r", stacks=["diy", "optimized", "diy:lazy"], trials=3,
                             registry=RegistrySettings(bandwidth_mbps=400, latency_ms=10),
                             images={}, starts=starts, summaries=summaries, ratios=ratios,
                             notes=notes)
    labels = [row[0] for row in coldstart_table(result).rows]
    assert "diy:lazy (lazy, kernel, prefetch)" in labels
    assert "optimized (lazy)" in labels
    from harness.report.coldstart_tracking import coldstart_metrics
    metrics = coldstart_metrics(result)
    assert "ratio.diy:lazy.cold.total_s.value" in metrics
    assert "ratio.optimized.cold.total_s.value" in metrics
