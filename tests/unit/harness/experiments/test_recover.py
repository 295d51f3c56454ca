"""Where a trial cut short stops counting: at the first request in the window with no record."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.experiments.recover import CUT, cut_trial
from harness.measure.metrics import Window
from harness.measure.records import DTYPES, account_for_schedule
from workloads.records import COLUMNS

WINDOW = Window(1.0, 10.0)


def recorded(indices: list[int], offsets: np.ndarray) -> pd.DataFrame:
    """Records of the requests `indices` (each answered in 0.1 s), accounted for."""
    frame = pd.DataFrame([[index, offsets[index], offsets[index], offsets[index] + 0.05,
                           offsets[index] + 0.1, 200, True, None, 8, 4, "r0"]
                          for index in indices], columns=list(COLUMNS)).astype(DTYPES)
    return account_for_schedule(frame, offsets, CUT)


def test_the_cut_is_the_first_unrecorded_request_in_the_window() -> None:
    offsets = np.arange(0.0, 12.0, 0.5)  # 24 requests, one every half second
    # 0.5 s (warm-up) is missing and does not count; 4.0 s is the first gap in the window.
    kept, cut_s = cut_trial(recorded([0, *range(2, 8), 9, 10], offsets), WINDOW)
    assert cut_s == 4.0
    assert kept["index"].tolist() == list(range(8))
    assert (kept["error"] == CUT).sum() == 1  # the warm-up one, never measured


def test_a_trial_recorded_to_its_end_keeps_its_whole_window() -> None:
    offsets = np.arange(0.0, 12.0, 0.5)
    kept, cut_s = cut_trial(recorded(list(range(24)), offsets), WINDOW)
    assert cut_s == WINDOW.end_s
    assert len(kept) == 22  # 11.0 and 11.5 are past the window
