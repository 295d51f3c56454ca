"""The machine's own speed per trial: measured on every core, kept before and after a trial
(also one that fails), and read back beside the capacities' spread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.measure import machine_speed
from harness.measure.machine_speed import (
    MACHINE_FILE,
    MachineSpeed,
    core_speeds,
    machine_check,
    machine_speed_around,
    read_machine_speed,
)
from harness.report.scorecard_tables import machine_words


def test_every_allowed_core_is_timed_by_each_yardstick_and_the_affinity_is_restored() -> None:
    allowed = os.sched_getaffinity(0)
    speeds = core_speeds(steps=20_000, copy_bytes=2**20, round_trips=50, timings=3)
    assert set(speeds) == {"python", "memory"} | ({"wakeup"} if len(allowed) > 1 else set())
    for name in ("python", "memory"):
        assert set(speeds[name]) == {str(core) for core in allowed}
        assert all(speed > 0 for speed in speeds[name].values())
    if len(allowed) > 1:  # between the first two cores
        first, second = sorted(allowed)[:2]
        assert list(speeds["wakeup"]) == [f"{first}-{second}"]
        assert speeds["wakeup"][f"{first}-{second}"] > 0
    assert os.sched_getaffinity(0) == allowed


def test_a_trial_keeps_its_speed_before_and_after_even_when_it_fails(tmp_path: Path) -> None:
    seen: list[MachineSpeed | None] = []

    def failing_trial() -> None:
        with machine_speed_around(tmp_path / "trial-1"):
            seen.append(read_machine_speed(tmp_path / "trial-1"))
            raise RuntimeError("the stack died")

    with pytest.raises(RuntimeError):
        failing_trial()
    assert seen[0] is not None
    assert seen[0].after is None  # before the trial ended, only "before" was kept
    taken = read_machine_speed(tmp_path / "trial-1")
    assert taken is not None
    assert taken.after is not None
    assert set(taken.after) == set(taken.before)


def test_a_trial_right_after_another_starts_from_the_speeds_that_one_ended_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[dict[str, dict[str, float]]] = []

    def counted() -> dict[str, dict[str, float]]:  # the nth measurement runs at n
        taken.append({"python": {"0": float(len(taken) + 1)}})
        return taken[-1]

    monkeypatch.setattr(machine_speed, "core_speeds", counted)
    with machine_speed_around(tmp_path / "trial-1") as first:
        pass
    assert first is not None
    assert first.after is not None
    with machine_speed_around(tmp_path / "trial-2", first.after) as second:
        pass
    assert len(taken) == 3  # not 4: the moment between the trials is measured once
    kept = read_machine_speed(tmp_path / "trial-2")
    assert kept is not None
    assert (kept.before, kept.after) == ({"python": {"0": 2.0}}, {"python": {"0": 3.0}})
    assert second is not None
    assert second.after == kept.after


def _trial(folder: Path, stack: str, trial: int, before: float, after: float) -> None:
    """A trial whose loop ran at `before` then `after` on both cores, and whose copy ran at
    10 GB/s throughout."""
    trial_dir = folder / stack / f"trial-{trial}"
    trial_dir.mkdir(parents=True)
    MachineSpeed(before={"python": {"0": before, "1": before}, "memory": {"0": 10.0}},
                 after={"python": {"0": after, "1": after}, "memory": {"0": 10.0}},
                 ).write(trial_dir / MACHINE_FILE)


def test_the_check_gives_each_trials_speed_the_spread_and_the_largest_drift(
        tmp_path: Path) -> None:
    _trial(tmp_path, "diy", 1, 20.0, 22.0)  # 21 on the mean, 10 % faster after
    _trial(tmp_path, "diy", 2, 21.0, 21.0)
    _trial(tmp_path, "optimized", 1, 24.0, 24.0)
    (tmp_path / "optimized" / "trial-2").mkdir()  # a run from before the check: no file
    check = machine_check(tmp_path, ["diy", "optimized"],
                          {"diy": [100.0, 116.0], "optimized": [120.0, None]})
    assert check is not None
    loop, copy = check.yardsticks["python"], check.yardsticks["memory"]
    assert loop.speeds == {"diy": [21.0, 21.0], "optimized": [24.0, None]}
    assert loop.spread == pytest.approx(24 / 21)
    assert loop.largest_drift == pytest.approx(0.1)
    assert copy.spread == pytest.approx(1.0)
    assert copy.largest_drift == pytest.approx(0.0)
    assert check.capacity_spread == {"diy": pytest.approx(1.16)}  # optimized: one capacity
    words = machine_words(check)
    assert words is not None
    assert "a Python loop: diy 21.0, 21.0; optimized 24.0, –" in words
    assert "(the trials 14.3% apart, 10.0% at most within one)" in words
    assert "a 64 MiB copy: diy 10.0, 10.0; optimized 10.0, – GB/s per core" in words
    assert "16% (diy)" in words


def test_no_measured_trial_gives_no_check(tmp_path: Path) -> None:
    (tmp_path / "diy" / "trial-1").mkdir(parents=True)
    assert machine_check(tmp_path, ["diy"], {}) is None
    assert machine_words(None) is None


def test_a_machine_that_refuses_the_yardsticks_still_runs_the_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: object) -> None:
        raise PermissionError("sched_setaffinity: not permitted here")

    monkeypatch.setattr(os, "sched_setaffinity", refused)
    ran = []
    with machine_speed_around(tmp_path / "trial-1"):
        ran.append(True)
    assert ran == [True]
    assert read_machine_speed(tmp_path / "trial-1") is None  # nothing measured, nothing kept
