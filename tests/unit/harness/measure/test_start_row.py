"""The scorecard's cold-start row from the starts it recorded: no bound below zero, so the
ratio's bounds stay positive or open, however far two starts lie apart."""

from __future__ import annotations

from pathlib import Path

from harness.measure.start_row import START_FILE, StartTimes, cold_start_row


def write_start(folder: Path, stack: str, trial: int, mode: str, image_s: float,
                ready_s: float) -> None:
    path = folder / stack / f"trial-{trial}" / START_FILE
    path.parent.mkdir(parents=True)
    StartTimes(mode=mode, cold=True, image_s=image_s, replicas_ready_s=ready_s,
               serving_s=image_s + ready_s).write(path)


def test_two_far_apart_starts_give_no_negative_bound_and_an_open_ratio(tmp_path: Path) -> None:
    # The fresh-clone demo's figures: diy's two starts 81 s apart in mean ± t·sd reach below 0.
    write_start(tmp_path, "diy", 1, "eager", 30.0, 43.0)
    write_start(tmp_path, "diy", 2, "eager", 51.6, 38.2)
    write_start(tmp_path, "optimized", 1, "lazy", 0.5, 60.0)
    write_start(tmp_path, "optimized", 2, "lazy", 0.5, 69.8)
    row = cold_start_row(tmp_path, ["diy", "optimized"], 2, "diy")
    assert row is not None
    diy = row.stacks["diy"]
    assert diy.ci_low == 0.0
    assert diy.ci_high is not None
    assert diy.ci_high > diy.value
    assert row.ratio_ci_low is not None
    assert row.ratio_ci_low > 0
    assert row.ratio_ci_high is None  # ÷ a lower bound of 0: open, not negative
    assert row.winner is None
