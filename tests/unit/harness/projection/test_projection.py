"""The fleet projection: the simulated replica and fleet, calibration that recovers a planted
replica and refuses an inconsistent one, fleet sizes, a day of autoscaling, and the command
on a capacity folder built here."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.cli import main
from harness.errors import UsageError
from harness.measure.host_timeline import HOST_FILE
from harness.projection import calibrate as calibration_module
from harness.projection import fleet_size
from harness.projection import projection as projection_module
from harness.projection.calibrate import MAX_ERROR, calibrate
from harness.projection.cold_starts import measured_cold_starts
from harness.projection.diurnal import DAY_S, diurnal_rate, simulate_day
from harness.projection.fleet_sim import SteadyRun, rate_at_slo, simulate_steady
from harness.projection.fleet_size import replicas_needed
from harness.projection.measured import Arrivals, Level, Measured, read_measured
from harness.projection.replica_model import ReplicaModel
from harness.report.coldstart_results import (
    ColdStartResult,
    PhaseFigure,
    RegistrySettings,
    StartSummary,
)
from stacks.autoscaler.config import AutoscalingSpec

WORK = np.random.default_rng(7).lognormal(math.log(0.25), 0.3, 2000)  # solo latencies, s
PLANTED = ReplicaModel(WORK, slowdown=0.1)
# One API server taking 45 ms a request: it saturates at 22 QPS, long before the engine.
FRONTED = ReplicaModel(WORK * 0.8, slowdown=0.02, front_s=0.045, front_servers=1)


@pytest.fixture(autouse=True)
def short_simulations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calibration_module, "REPEATS", 2)
    monkeypatch.setattr(calibration_module, "SEARCH_REPEATS", 1)
    monkeypatch.setattr(calibration_module, "SLOWDOWNS", np.geomspace(0.01, 1.0, 11))
    monkeypatch.setattr(calibration_module, "FRONTS_S", np.array([0.0]))
    monkeypatch.setattr(calibration_module, "JUMPS", np.array([0.0]))
    monkeypatch.setattr(fleet_size, "SIM_REPLICAS", 4)
    monkeypatch.setattr(fleet_size, "SIM_S", 30.0)


def test_a_replica_alone_takes_its_work_and_saturates_where_its_model_says() -> None:
    light = simulate_steady(PLANTED, 1, "round_robin", 0.5, duration_s=200)
    assert light.percentile(50) == pytest.approx(float(np.median(WORK)), rel=0.15)
    saturation = PLANTED.saturation_qps()
    assert saturation == pytest.approx(256 / (WORK.mean() * (1 + 0.1 * 255)))
    over = simulate_steady(PLANTED, 1, "round_robin", 1.5 * saturation, duration_s=60)
    assert math.isinf(over.percentile(99))  # more arrive than it can ever finish


def test_the_balancers_policies_differ_as_they_should() -> None:
    """The same code the balancer runs: random placement piles up where P2C does not."""
    rate = 0.8 * 4 * rate_at_slo(PLANTED, 1, "round_robin", 1.0, 30.0)
    p2c = simulate_steady(PLANTED, 4, "p2c", rate, duration_s=60)
    random_ = simulate_steady(PLANTED, 4, "random", rate, duration_s=60)
    assert p2c.percentile(99) < random_.percentile(99)


def test_a_fleet_behind_random_placement_is_as_efficient_as_its_replicas() -> None:
    """Each replica of a randomly placed Poisson stream sees a Poisson stream, as one replica
    alone does: the efficiency is 1 but for the simulation's noise. P2C from one balancer that
    sees every request does better than from two that each see their own and the replicas'
    reports every half second."""
    random_ = fleet_size.policy_efficiency(PLANTED, "random", 1.0, replicas_per_balancer=4)
    assert random_.balancers == 1
    assert random_.efficiency == pytest.approx(1.0, abs=0.15)
    one = fleet_size.policy_efficiency(PLANTED, "p2c", 1.0, replicas_per_balancer=4)
    two = fleet_size.policy_efficiency(PLANTED, "p2c", 1.0, replicas_per_balancer=2)
    assert (one.balancers, two.balancers) == (1, 2)
    assert one.one_replica_qps == two.one_replica_qps  # one replica: one balancer is as many
    assert two.efficiency < one.efficiency


def test_a_front_stage_saturates_at_its_servers_rate() -> None:
    assert FRONTED.saturation_qps() == pytest.approx(1 / 0.045)
    light = simulate_steady(FRONTED, 1, "round_robin", 0.5, duration_s=200)
    assert light.percentile(50) == pytest.approx(0.045 + float(np.median(FRONTED.work_s)),
                                                 rel=0.15)
    over = simulate_steady(FRONTED, 1, "round_robin", 1.3 / 0.045, duration_s=60)
    assert over.percentile(99) > 0.3 * 60 * 0.9  # a queue growing by 30 % of the rate, 60 s
    two = ReplicaModel(FRONTED.work_s, FRONTED.slowdown, front_s=0.045, front_servers=2)
    assert two.saturation_qps() == pytest.approx(2 / 0.045)
    assert simulate_steady(two, 1, "round_robin", 1.3 / 0.045, duration_s=60).percentile(99) < 2


def test_a_replayed_schedule_keeps_its_arrivals_and_its_burst_sets_the_tail() -> None:
    """As many requests in the measured window, evenly spaced or a fifth of them in a burst
    of two seconds."""
    even = np.linspace(0, 60, 600, endpoint=False)
    rng = np.random.default_rng(5)
    bursty = np.sort(np.concatenate([rng.uniform(0, 60, 480), 30 + rng.uniform(0, 2, 120)]))
    runs = [simulate_steady(PLANTED, 2, "round_robin", 10.0, duration_s=50, warmup_s=10,
                            arrivals_s=arrivals) for arrivals in (even, bursty)]
    assert [len(run.latencies_s) for run in runs] == [500, int((bursty >= 10).sum())]
    assert runs[1].percentile(99) > 2 * runs[0].percentile(99)


def test_calibration_replays_each_level_s_own_bursts() -> None:
    """Each level's schedule holds a burst, a fifth of its requests within two seconds: at
    Poisson times at its rate, no replica reproduces both its P50 and its P99; on its own
    arrivals, the planted one does. Four trials of the schedule pooled, as a run's are."""
    levels, rng = [], np.random.default_rng(3)
    for rate in (10.0, 20.0, 30.0):
        count = int(rate * 70)
        times = np.sort(np.concatenate([rng.uniform(0, 70, count - count // 5),
                                        40 + rng.uniform(0, 2, count // 5)]))
        trials = [simulate_steady(PLANTED, 2, "p2c", rate, duration_s=60, seed=11 + trial,
                                  warmup_s=10, arrivals_s=times) for trial in range(4)]
        run = SteadyRun(np.concatenate([t.latencies_s for t in trials]), rate, 2, "p2c")
        levels.append(Level(rate, run.percentile(50), run.percentile(99), len(run.latencies_s),
                            60.0, 10.0, arrivals=(Arrivals(tuple(times), 10.0, 60.0),)))
    replayed = Measured("optimized", 2, "p2c", levels, PLANTED.work_s)
    fitted = calibrate(replayed)
    assert fitted.trusted, [(f.p50_error, f.p99_error) for f in fitted.fits]
    poisson = dataclasses.replace(replayed, levels=[dataclasses.replace(level, arrivals=())
                                                    for level in levels])
    assert calibrate(poisson).max_error > MAX_ERROR


def poisson_times(rate: float, length_s: float, seed: int) -> np.ndarray:
    times = np.cumsum(np.random.default_rng(seed).exponential(1 / rate, int(2 * rate * length_s)))
    return times[times < length_s]


def planted_levels(rates: list[float], p99_factor: float = 1.0,
                   model: ReplicaModel = PLANTED) -> Measured:
    """Levels "measured" on a planted replica: 2 of them behind P2C, 60 s probes after 10 s
    of warm-up, each on Poisson arrivals at its rate that it keeps."""
    levels = []
    for rate in rates:
        times = poisson_times(rate, 70.0, seed=11)
        run = simulate_steady(model, 2, "p2c", rate, duration_s=60, seed=11, warmup_s=10,
                              arrivals_s=times)
        levels.append(Level(rate, run.percentile(50), p99_factor * run.percentile(99),
                            len(run.latencies_s), 60.0, 10.0,
                            arrivals=(Arrivals(tuple(times), 10.0, 60.0),)))
    return Measured("optimized", 2, "p2c", levels, model.front_s + model.work_s,
                    model.front_servers)


def test_calibration_recovers_a_planted_replica() -> None:
    fitted = calibrate(planted_levels([4.0, 30.0, 50.0]))
    assert fitted.trusted, [(f.p50_error, f.p99_error) for f in fitted.fits]
    assert fitted.model.slowdown == pytest.approx(0.1, rel=0.6)  # on the test's coarse grid


def test_calibration_finds_a_planted_front_stage_and_predicts_each_level_left_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    measured = planted_levels([4.0, 20.0, 32.0, 40.0], model=FRONTED)
    engine_only = calibrate(measured)  # the fixture's grid: no front stage
    monkeypatch.setattr(calibration_module, "FRONTS_S", np.array([0.0, 0.0225, 0.045, 0.09]))
    monkeypatch.setattr(calibration_module, "SLOWDOWNS", np.geomspace(0.005, 0.08, 5))
    fitted = calibrate(measured)
    assert fitted.trusted, [(f.p50_error, f.p99_error) for f in fitted.fits]
    assert (fitted.model.front_s, fitted.model.front_servers) == (0.045, 1)
    assert [f.level.rate_qps for f in fitted.held_out] == [4.0, 20.0, 32.0, 40.0]
    assert fitted.held_out_error <= 0.15, [f.error for f in fitted.held_out]
    # the API server's queue is not a batching cost's shape: no batching cost alone comes near
    assert engine_only.max_error > 2 * fitted.max_error


def test_calibration_finds_a_planted_cost_of_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica whose requests take half again as long as soon as two share it (bf16 on a
    CPU): without a jump in the grid, no batching cost fits both light and heavy load."""
    jumping = ReplicaModel(WORK, slowdown=0.05, jump=0.5)
    assert jumping.factor(1) == 1.0
    assert jumping.factor(3) == pytest.approx(1.6)
    measured = planted_levels([2.0, 8.0, 24.0, 48.0], model=jumping)
    monkeypatch.setattr(calibration_module, "SLOWDOWNS", np.geomspace(0.0125, 0.2, 5))
    linear = calibrate(measured)  # the fixture's grid: no jump
    monkeypatch.setattr(calibration_module, "JUMPS", np.array([0.0, 0.25, 0.5, 0.75]))
    fitted = calibrate(measured)
    assert fitted.trusted, [(f.p50_error, f.p99_error) for f in fitted.fits]
    assert (fitted.model.jump, fitted.model.slowdown) == (0.5, pytest.approx(0.05))
    assert fitted.max_error < linear.max_error


def test_a_measurement_the_model_cannot_reproduce_is_not_trusted() -> None:
    fitted = calibrate(planted_levels([4.0, 30.0, 50.0], p99_factor=3.0))
    assert not fitted.trusted
    assert fitted.max_error > 0.15


def test_fleet_sizes_and_a_day_of_autoscaling() -> None:
    assert replicas_needed(200_000, 1200, 0.9) == math.ceil(200_000 / 1080)
    assert diurnal_rate(1000, 16 * 3600) == pytest.approx(1000)
    assert diurnal_rate(1000, 4 * 3600) == pytest.approx(300)
    spec = AutoscalingSpec(policy="asymmetric", reference="hpa")
    fast = simulate_day(200_000, 1000, 0.5, spec, cold_start_s=0, target_utilization=0.7)
    assert fast.violating_minutes == 0
    assert fast.replica_hours < fast.static_replica_hours
    assert fast.static_replicas == 200
    assert fast.static_replica_hours == pytest.approx(200 * DAY_S / 3600)
    slow = simulate_day(200_000, 1000, 0.5, spec, cold_start_s=3600, target_utilization=0.95)
    assert slow.violating_minutes > 0  # an hour-long start falls behind the morning ramp


def run_json(run: Path, kind: str) -> None:
    (run / "run.json").write_text(json.dumps({"kind": kind, "out": str(run),
                                              "started": "2026-12-04T00:00:00+00:00",
                                              "environment": {}}))


def capacity_folder(tmp_path: Path, measured: Measured) -> Path:
    run = tmp_path / "capacity"
    (run / "specs").mkdir(parents=True)
    run_json(run, "capacity")
    (run / "specs" / "optimized.yaml").write_text(yaml.safe_dump(
        {"name": "optimized", "replicas": 2, "balancer": {"policy": "p2c"},
         "engine": {"api_server_count": 2}}))
    # Each probe's records on its level's arrivals, each request taking a planted work; the
    # lowest's go on after its window until every planted work is taken once.
    for k, level in enumerate(measured.levels):
        sent = np.array(level.arrivals[0].times_s)
        if k == 0:
            sent = np.concatenate([sent, 70 + np.arange(len(measured.work_s) - len(sent))])
        pd.DataFrame({"index": range(len(sent)), "scheduled_s": sent, "sent_s": sent,
                      "done_s": sent + np.resize(measured.work_s, len(sent)), "ok": True}
                     ).to_parquet(run / f"probe-{k + 1}.parquet")
    probes = [{"trial": 1, "probe": k + 1, "rate_qps": level.rate_qps, "passed": True,
               "requests": level.requests, "ok_requests": level.requests,
               "failed_requests": 0, "offered_qps": level.rate_qps,
               "throughput_qps": level.rate_qps, "goodput_qps": level.rate_qps,
               "success_rate": 1.0, "latency_p50_s": level.p50_s, "latency_p90_s": None,
               "latency_p99_s": level.p99_s, "service_p99_s": None, "send_lag_p99_s": None,
               "concurrency": 2.0 if k == 0 else None, "errors": {},
               "drained_s": 0.0, "stopped_early": None, "schedule_sha256": "0",
               "schedule": "s", "records": f"probe-{k + 1}.parquet"}
              for k, level in enumerate(measured.levels)]
    stacks = {"optimized": {"replicas": 2, "trials": [], "status": "measured", "note": "",
                            "probes": probes, "capacity_qps": 50.0,
                            "per_replica_capacity_qps": 25.0, "ci_low": None,
                            "ci_high": None, "interval_method": None}}
    (run / "summary.json").write_text(json.dumps({
        "kind": "capacity", "run": "r", "workload": "w",
        "slo": {"p99_s": 1.0, "min_success": 0.9999},
        "search": {"start_qps": 4, "growth": 2, "tolerance": 0.05, "max_qps": 100,
                   "max_probes": 20, "duration_s": 60, "warmup_s": 10},
        "window": {"start_s": 10, "length_s": 60}, "trials": 1, "baseline": "optimized",
        "stacks": stacks, "ratio": None, "ratios": {}}))
    return run


def test_read_measured_takes_levels_work_and_setup_from_a_capacity_folder(
        tmp_path: Path) -> None:
    measured = planted_levels([4.0, 30.0, 50.0])
    read = read_measured(capacity_folder(tmp_path, measured), "optimized")
    assert [level.rate_qps for level in read.levels] == [4.0, 30.0, 50.0]
    assert (read.levels[0].duration_s, read.levels[0].warmup_s) == (60.0, 10.0)
    assert (read.replicas, read.policy, read.front_servers) == (2, "p2c", 2)
    for level, planted in zip(read.levels, measured.levels, strict=True):
        assert level.arrivals == planted.arrivals  # its probe's, warm-up and window
    # Records without replicas' names: every service time is taken, and the source says so
    np.testing.assert_allclose(read.work_s, measured.work_s)
    assert read.work_source.startswith(f"every one of {len(measured.work_s):,} requests")
    assert "(the records do not name replicas)" in read.work_source


STAGE_S, WARMUP_S = 70.0, 10.0


def stage_records(stages: list[tuple[float, float]], trial: int,
                  fail_in: float | None = None) -> pd.DataFrame:
    """One trial of steady stages, each (rate, how many times slower the machine is), served
    by the planted replica. The schedule, Poisson at each stage's rate, is the same in every
    trial, as a run's is; a machine k times slower is the planted one on the schedule played
    k times faster, its latencies k times longer. The two replicas' names alternate, as
    round-robin's would. Every request fails in the stage at rate `fail_in`."""
    frames, start = [], WARMUP_S
    for k, (rate, slower) in enumerate(stages):
        times = poisson_times(rate, STAGE_S, seed=k)
        run = simulate_steady(PLANTED, 2, "p2c", rate * slower, duration_s=STAGE_S / slower,
                              seed=trial * 10 + k, warmup_s=0.0, arrivals_s=times / slower)
        latencies = run.latencies_s * slower  # in the order they finished: near enough
        sent = start + times
        ok = rate != fail_in
        frames.append(pd.DataFrame({
            "scheduled_s": sent, "sent_s": sent, "first_byte_s": sent + latencies,
            "done_s": sent + latencies, "status": 200 if ok else 503, "ok": ok,
            "error": None if ok else "http_503", "prompt_tokens": 50, "output_tokens": 50,
            "replica": [f"replica-{k % 2}" for k in range(len(sent))], "trial": trial}))
        start += STAGE_S
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(0, "index", range(len(frame)))
    return frame


def levels_folder(tmp_path: Path, rates: list[float], kind: str = "steady",
                  fail_in: float | None = None, slower: list[float] | None = None) -> Path:
    """A `harness run` folder of steady stages (or, with `kind`, another stage kind), each
    on a machine `slower` times slower (1 throughout by default)."""
    run = tmp_path / "levels"
    (run / "specs").mkdir(parents=True)
    (run / "optimized" / "records").mkdir(parents=True)
    run_json(run, "comparison")
    (run / "specs" / "optimized.yaml").write_text(yaml.safe_dump(
        {"name": "optimized", "replicas": 2, "balancer": {"policy": "p2c"}}))
    stages = [{"kind": kind, "qps": rate, "duration_s": STAGE_S} if kind == "steady" else
              {"kind": kind, "from_qps": rate, "to_qps": rate + 1, "duration_s": STAGE_S}
              for rate in rates]
    (run / "specs" / "workload.yaml").write_text(yaml.safe_dump(
        {"name": "calibration_levels", "stages": stages, "warmup_s": WARMUP_S}))
    for trial in (1, 2):
        stage_records(list(zip(rates, slower or [1.0] * len(rates), strict=True)), trial,
                      fail_in).to_parquet(run / "optimized" / "records" / f"trial-{trial}.parquet")
    return run


def test_steady_stages_of_a_run_are_levels_pooled_over_its_trials(tmp_path: Path) -> None:
    read = read_measured(levels_folder(tmp_path, [30.0, 4.0, 50.0]), "optimized")
    assert [level.rate_qps for level in read.levels] == [4.0, 30.0, 50.0]
    assert (read.levels[0].duration_s, read.levels[0].warmup_s) == (60.0, 10.0)
    assert read.levels[0].requests == pytest.approx(2 * 4.0 * 60, rel=0.2)  # both trials
    assert (read.replicas, read.policy) == (2, "p2c")
    for level in read.levels:  # each trial's own P99, the pooled one between them
        assert len(level.p99_trials) == 2
        assert min(level.p99_trials) - 1e-9 <= level.p99_s <= max(level.p99_trials) + 1e-9
    light = simulate_steady(PLANTED, 2, "p2c", 4.0, duration_s=600, seed=3)
    assert read.levels[0].p50_s == pytest.approx(light.percentile(50), rel=0.15)
    # the work: the lowest level's requests alone, drawn again against their bias
    assert np.median(read.work_s) == pytest.approx(np.median(light.latencies_s), rel=0.1)
    fitted = calibrate(read)
    assert fitted.trusted, [(f.p50_error, f.p99_error) for f in fitted.fits]


def test_each_level_carries_the_schedule_s_arrivals_over_its_stretches(tmp_path: Path) -> None:
    run = levels_folder(tmp_path, [4.0, 30.0, 4.0, 50.0])
    lowest, at_30 = read_measured(run, "optimized").levels[:2]
    trial = pd.read_parquet(run / "optimized" / "records" / "trial-2.parquet")
    # the stretch is the whole stage: its first 10 s settle, the rest is measured
    start = WARMUP_S + STAGE_S
    stage = trial[(trial["scheduled_s"] >= start) & (trial["scheduled_s"] < start + STAGE_S)]
    assert at_30.arrivals == (Arrivals(tuple(stage["scheduled_s"] - start), 10.0, 60.0),)
    assert [len(stretch.times_s) for stretch in lowest.arrivals] == [  # both 4 QPS stages
        ((trial["scheduled_s"] >= at) & (trial["scheduled_s"] < at + STAGE_S)).sum()
        for at in (WARMUP_S, WARMUP_S + 2 * STAGE_S)]


def test_the_lowest_stages_measure_the_machines_drift_around_each_level(
        tmp_path: Path) -> None:
    """The machine slows steadily through the run, 1.6× by its end: the stages at 4 QPS
    around each level say how slow it was there."""
    rates = [4.0, 30.0, 4.0, 20.0, 4.0, 35.0, 4.0]
    slower = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6]
    read = read_measured(levels_folder(tmp_path, rates, slower=slower), "optimized")
    by_rate = {level.rate_qps: level.speed for level in read.levels}
    assert by_rate == pytest.approx({4.0: 1.0, 20.0: 1.0, 30.0: 1.1 / 1.3, 35.0: 1.5 / 1.3},
                                    rel=0.06)  # against the 4 QPS stages pooled: 1.3 on average
    assert read.levels[0].requests == pytest.approx(2 * 4 * 4.0 * 60, rel=0.15)  # 4 stages


def test_each_level_carries_the_host_over_its_requests_lives(tmp_path: Path) -> None:
    run = levels_folder(tmp_path, [4.0, 30.0, 50.0])
    assert all(level.steal is None for level in read_measured(run, "optimized").levels)
    # In both trials the host steals 40 % through the 30 QPS stage and 2 % around it, the
    # cores run at half speed there and other processes take 30 %; the samples are on the
    # wall clock, the records on their trial's own (from its anchor).
    for trial, anchor in ((1, 5000.0), (2, 9000.0)):
        folder = run / "optimized" / f"trial-{trial}"
        folder.mkdir()
        (folder / "records.jsonl").write_text(json.dumps(
            {"records_version": 1, "anchor_unix_s": anchor, "schedule_sha256": "0" * 64}) + "\n")
        taken = 0.1 * np.arange(1, int((WARMUP_S + 4 * STAGE_S) * 10))
        burst = (taken > WARMUP_S + STAGE_S) & (taken <= WARMUP_S + 2 * STAGE_S)
        scanned = np.arange(len(taken)) % 10 == 9  # /proc, once a second
        pd.DataFrame({"unix_s": anchor + taken, "steal_share": np.where(burst, 0.4, 0.02),
                      "loop_speed": np.where(burst, 10.0, 20.0),
                      "outside_share": np.where(scanned, np.where(burst, 0.3, 0.0), np.nan)}
                     ).to_csv(folder / HOST_FILE, index=False)
    by_rate = {level.rate_qps: level for level in read_measured(run, "optimized").levels}
    assert by_rate[30.0].steal == pytest.approx(0.4, rel=0.02)  # a few end past the burst
    assert by_rate[30.0].steal_slowest == pytest.approx(0.4, rel=0.1)
    # the loop ran at half its usual (median) speed through the burst, and processes
    # outside the run took 30 % of the CPU time
    assert by_rate[30.0].core_speed == pytest.approx(0.5, rel=0.05)
    assert by_rate[30.0].outside == pytest.approx(0.3, rel=0.05)
    for rate in (4.0, 50.0):
        assert by_rate[rate].steal == pytest.approx(0.02, abs=0.002)
        assert by_rate[rate].steal_slowest == pytest.approx(0.02, abs=0.01)
        assert by_rate[rate].core_speed == pytest.approx(1.0, abs=0.01)
        assert by_rate[rate].outside == pytest.approx(0.0, abs=0.01)


def test_a_stage_with_failures_or_a_growing_queue_is_no_level_and_other_shapes_are_refused(
        tmp_path: Path) -> None:
    read = read_measured(levels_folder(tmp_path / "a", [4.0, 20.0, 30.0, 50.0, 90.0],
                                       fail_in=50.0), "optimized")
    assert [level.rate_qps for level in read.levels] == [4.0, 20.0, 30.0]  # 90: past capacity
    with pytest.raises(UsageError, match="needs 3 load levels"):
        read_measured(levels_folder(tmp_path / "b", [4.0, 20.0, 50.0], fail_in=50.0),
                      "optimized")
    with pytest.raises(UsageError, match="not made of steady stages"):
        read_measured(levels_folder(tmp_path / "c", [4.0, 20.0, 50.0], kind="ramp"),
                      "optimized")
    with pytest.raises(UsageError, match="no records of stack 'diy'"):
        read_measured(levels_folder(tmp_path / "d", [4.0, 20.0, 50.0]), "diy")
    with pytest.raises(UsageError, match="no run.json"):
        read_measured(tmp_path, "optimized")


def test_the_command_projects_a_calibrated_stack_and_keeps_its_result(tmp_path: Path) -> None:
    run = capacity_folder(tmp_path, planted_levels([4.0, 30.0, 50.0]))
    out = tmp_path / "projection"
    assert main(["project", "--calibrate-from", str(run), "--stacks", "optimized",
                 "--replica-qps", "optimized=1200", "--out", str(out)]) == 0
    saved = json.loads((out / "projection.json").read_text())
    stack = saved["stacks"][0]
    assert stack["trusted"]
    assert stack["calibration_error"] <= 0.15
    assert stack["work_source"] == read_measured(run, "optimized").work_source != ""
    assert {row["policy"] for row in stack["fleets"]} == {"round_robin", "p2c"}
    assert saved["replicas_per_balancer"] == 2
    for row in stack["fleets"]:
        assert (row["simulated_replicas"], row["balancers"]) == (4, 2)  # the fixture's 4
        assert row["per_replica_qps"] == 1200
        assert row["source"] == "given"
        assert row["replicas"] == math.ceil(200_000 / (1200 * row["efficiency"]))
    assert len(stack["day"]) == 2
    assert main(["project", "--calibrate-from", str(run), "--stacks", "optimized",
                 "--replica-qps", "diy=750", "--out", str(out)]) == 2
    assert main(["project", "--calibrate-from", str(run), "--stacks", "optimized",
                 "--replicas-per-balancer", "0", "--out", str(out)]) == 2


def coldstart_folder(tmp_path: Path, totals: dict[str, float]) -> Path:
    run = tmp_path / "coldstart"
    run.mkdir()

    def figure(value: float) -> PhaseFigure:
        return PhaseFigure(value=value, ci_low=None, ci_high=None, trials=[value])

    summaries = [StartSummary(stack=name, mode="lazy", cache=cache, fetched_fraction=figure(0.5),
                              phases={"total_s": figure(total if cache == "cold" else 1.0)})
                 for name, total in totals.items() for cache in ("cold", "warm")]
    ColdStartResult(run_id="r", stacks=list(totals), trials=1,
                    registry=RegistrySettings(bandwidth_mbps=400, latency_ms=10), images={},
                    starts=[], summaries=summaries, ratios=[]).write(run / "coldstart.json")
    return run


def test_the_day_takes_each_stacks_cold_start_from_a_coldstart_run(tmp_path: Path) -> None:
    run = capacity_folder(tmp_path, planted_levels([4.0, 30.0, 50.0]))
    starts = coldstart_folder(tmp_path, {"optimized": 77.5})
    out = tmp_path / "projection"
    assert main(["project", "--calibrate-from", str(run), "--stacks", "optimized",
                 "--coldstart-from", str(starts), "--out", str(out)]) == 0
    stack = json.loads((out / "projection.json").read_text())["stacks"][0]
    assert (stack["cold_start_s"], stack["cold_start_source"]) == (77.5, "measured")
    assert measured_cold_starts(starts, ["optimized"]) == {"optimized": 77.5}
    with pytest.raises(UsageError, match="want one cold start of diy"):
        measured_cold_starts(starts, ["diy"])
    with pytest.raises(UsageError, match="no coldstart.json"):
        measured_cold_starts(run, ["optimized"])


def test_an_slo_no_replica_can_meet_is_said_not_projected(tmp_path: Path) -> None:
    run = capacity_folder(tmp_path, planted_levels([4.0, 30.0, 50.0]))
    out = tmp_path / "projection"
    assert main(["project", "--calibrate-from", str(run), "--stacks", "optimized",
                 "--slo-p99", "0.01", "--out", str(out)]) == 0
    stack = json.loads((out / "projection.json").read_text())["stacks"][0]
    assert stack["trusted"]
    assert not stack["fleets"]
    assert "not projected" in stack["note"]


def test_an_slo_in_the_tail_of_a_request_alone_gives_no_fleet(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica that meets the SLO only while nearly idle: its rate at the SLO, and a
    fleet's, are a few slow draws, and their ratio would be read as an efficiency."""
    run = capacity_folder(tmp_path, planted_levels([4.0, 30.0, 50.0]))
    def nearly_idle(model: ReplicaModel, slo_p99_s: float, seed: int = 0) -> float:
        return 0.05 / (model.mean_work_s + model.front_s)  # 0.05 requests held on average

    monkeypatch.setattr(projection_module, "one_replica_qps", nearly_idle)
    out = tmp_path / "projection"
    assert main(["project", "--calibrate-from", str(run), "--stacks", "optimized",
                 "--out", str(out)]) == 0
    stack = json.loads((out / "projection.json").read_text())["stacks"][0]
    assert stack["trusted"]
    assert (stack["fleets"], stack["day"]) == ([], [])
    assert "holding 0.05 requests on average" in stack["note"]
    assert "the tail of a request alone" in stack["note"]
