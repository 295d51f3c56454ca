"""`harness scorecard` on two launched stacks whose replicas are fake OpenAI servers (test
doubles) under the real launcher, supervisor, balancer and Locust: every trial serves the fixed
load, the capacity search and the replica kill on one start; the rows, their intervals and
verdicts reach disk, MLflow and the dashboard, which opens on the scorecard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from harness.errors import UsageError
from harness.experiments.scorecard import ScorecardConfig, run_scorecard
from harness.report.log_folder import log_saved
from harness.report.results import CapacitySummary, ProbeRow, StackFigures, read_result
from harness.report.scorecard_results import Scorecard
from tests.integration.test_dashboard import app_over
from tests.integration.test_faults import plain_and_guarded, scenario_file
from tests.integration.test_run import QuietRun, workload


def scaling_guarded(stacks: list[str], tmp_path: Path) -> tuple[list[str], str]:
    """The guarded stack given an asymmetric autoscaler (1 → 2 replicas, one request in flight
    per replica), and a spike that needs both."""
    guarded = Path(stacks[1])
    spec = yaml.safe_load(guarded.read_text())
    spec["autoscaling"] = {"policy": "asymmetric", "min_replicas": 1, "max_replicas": 2,
                           "target_concurrency": 1, "interval_s": 0.2, "metric_window_s": 0.6,
                           "up_window_s": 0, "down_window_s": 30, "tolerance": 0}
    guarded.write_text(yaml.safe_dump(spec))
    spike = tmp_path / "spike.yaml"
    spike.write_text(yaml.safe_dump({"name": "test_spike", "autoscale": True, "stages": [
        {"kind": "steady", "qps": 5, "duration_s": 2},
        {"kind": "steady", "qps": 40, "duration_s": 4},
        {"kind": "steady", "qps": 5, "duration_s": 2}]}))
    return stacks, str(spike)


class QuietScorecard(QuietRun):
    def __init__(self) -> None:
        self.phases: list[tuple[str, int, str, int]] = []
        self.starts: list[tuple[str, int]] = []

    def stack_starting(self, stack: str, trial: int) -> Any:
        self.starts.append((stack, trial))
        return super().stack_starting(stack, trial)

    def searches_planned(self, searches: int) -> None:
        pass

    def probe_started(self, stack: str, trial: int, probe: int, rate_qps: float,
                      requests: int) -> None:
        pass

    def probe_done(self, stack: str, trial: int, row: ProbeRow) -> None:
        pass

    def search_done(self, stack: str, trial: int, result: Any) -> None:
        pass

    def phase_started(self, stack: str, trial: int, phase: str, requests: int) -> None:
        pass

    def phase_done(self, stack: str, trial: int, phase: str, figures: StackFigures) -> None:
        self.phases.append((stack, trial, phase, figures.requests))


@pytest.mark.usefixtures("fake_engine")
def test_one_start_per_trial_serves_every_row_and_the_dashboard_opens_on_them(
        tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    observer = QuietScorecard()
    stacks, spike = scaling_guarded(plain_and_guarded(tmp_path), tmp_path)
    config = ScorecardConfig(
        stacks=stacks, out=tmp_path / "out", trials=2, kill_trials=1, spike_scenario=spike,
        workload=workload(tmp_path, rate_qps=20, duration_s=3, arrival="poisson"),
        slo_p99_s=1.0, duration_s=2, warmup_s=0.5, start_qps=10, max_qps=20,
        tolerance=0.5, load_qps=40, load_duration_s=6, phase_warmup_s=1, kill_qps=20,
        kill_duration_s=5, kill_scenario=scenario_file(tmp_path, {"kind": "kill_replica",
                                                                  "at_s": 1, "replica": 0}))
    path = run_scorecard(config, observer)
    out = tmp_path / "out"
    assert path == out / "scorecard.json"
    # The kill phase only in the first trial, the spike only in the last, each after the load.
    assert [(stack, trial, phase) for stack, trial, phase, _ in observer.phases] == [
        ("plain", 1, "load"), ("plain", 1, "kill"), ("guarded", 1, "load"),
        ("guarded", 1, "kill"), ("plain", 2, "load"), ("plain", 2, "spike"),
        ("guarded", 2, "load"), ("guarded", 2, "spike")]
    # One start per stack and trial serves every phase.
    assert observer.starts == [("plain", 1), ("guarded", 1), ("plain", 2), ("guarded", 2)]
    card = read_result(path, Scorecard)
    assert card.pending == []
    rows = {row.dimension: row for row in card.rows}
    assert list(rows) == ["capacity", "p99_at_load", "success_under_kill", "cold_start",
                          "spike_slo", "spike_cost"]
    # Each stack's start in both (cold) trials, timed: here the replicas' own start alone,
    # as these stacks run from this machine, not from an image.
    start = json.loads((out / "plain" / "trial-2" / "start.json").read_text())
    assert start["mode"] == "none"
    assert start["image_s"] == 0
    assert start["serving_s"] == start["replicas_ready_s"] > 0
    cold = rows["cold_start"].stacks["plain"]
    assert cold.trials[1] == start["serving_s"]
    assert cold.ci_low is not None
    assert cold.ci_low <= cold.value <= cold.ci_high  # type: ignore[operator]
    load = rows["p99_at_load"]
    # 40 QPS × 6 s × 2 trials ≈ 480 requests per stack: enough for the P99's upper bound.
    for figure in load.stacks.values():
        assert figure.requests >= 368
        assert len(figure.trials) == 2
        assert figure.ci_low is not None
        assert figure.ci_high is not None
        assert figure.value is not None
        assert figure.ci_low <= figure.value <= figure.ci_high
    kill = rows["success_under_kill"]
    assert kill.setting == "20 QPS, 1 × 5 s, test_faults"
    plain, guarded = kill.stacks["plain"], kill.stacks["guarded"]
    assert plain.value is not None
    assert guarded.value is not None
    assert plain.value < guarded.value  # round-robin keeps sending to the dead replica
    faults = (out / "plain" / "trial-1" / "kill" / "faults.jsonl").read_text().splitlines()
    assert json.loads(faults[0])["replica"] == "replica-0"
    # The spike: the fixed fleet pays its 2 replicas throughout; the scaled one was brought
    # to its floor before the replay (drained, before the records' clock began) and scaled up
    # in it, losing nothing to a scaling action.
    window_s = 8.0
    cost = rows["spike_cost"]
    assert cost.setting == "test_spike, 1 × 8 s, short form"
    assert cost.stacks["plain"].value == pytest.approx(2 * window_s)
    assert cost.stacks["guarded"].value is not None
    assert window_s <= cost.stacks["guarded"].value < 2 * window_s
    log = pd.read_parquet(out / "guarded" / "trial-2" / "spike" / "scaling.parquet")
    actions = log[log["event"] != "tick"]
    settled = actions[actions["event"] == "replica_stopped"].iloc[0]
    assert settled["offset_s"] < 0
    joined = actions[actions["event"] == "replica_joined"]
    assert len(joined) == 1
    assert joined.iloc[0]["offset_s"] > 0
    assert not (out / "plain" / "trial-2" / "spike" / "logs" / "scaling.jsonl").exists()
    slo = rows["spike_slo"]
    assert slo.stacks["guarded"].note.startswith("asymmetric, 1 → 2 replicas; P99 in the spike")
    assert "1 scale-up(s)" in slo.stacks["guarded"].note
    assert slo.stacks["guarded"].note.endswith(", 0 failed by scaling")
    assert slo.stacks["plain"].note.startswith("static, 2 replicas; ")
    assert slo.winner is None
    assert slo.verdict.startswith("too close to call: one spike each (short form) gives no "
                                  "interval: plain ")
    capacity = read_result(out / "summary.json", CapacitySummary)
    assert rows["capacity"].stacks["plain"].value == capacity.stacks["plain"].capacity_qps
    assert capacity.ratio is not None
    assert rows["capacity"].verdict == capacity.ratio.verdict
    # The instrument's check spans every replay: each probe, each phase of each trial.
    assert card.send_lag is not None
    probes = [probe for row in capacity.stacks.values() for probe in row.probes]
    whole = [probe for probe in probes if probe.stopped_early is None]
    assert card.send_lag.replays == len(whole) + 4 + 2  # load: 2 stacks × 2 trials; kill: 2
    assert card.send_lag.overloaded == len(probes) - len(whole)
    assert card.send_lag.worst_p99_s is not None
    # The machine's own speed, before and after each of the 4 trials, beside the capacities.
    assert card.machine is not None
    for yardstick in card.machine.yardsticks.values():
        assert all(len(speeds) == 2 and None not in speeds
                   for speeds in yardstick.speeds.values())
        assert yardstick.largest_drift is not None
    assert set(card.machine.capacity_spread) <= {"plain", "guarded"}
    # MLflow: the scorecard's parent carries each row's figures and winner.
    parent = MlflowClient(mlflow_store).get_run(log_saved(out))
    assert parent.data.tags["harness.role"] == "scorecard"
    assert parent.data.tags["harness.score.success_under_kill"] == (kill.winner or "none")
    assert parent.data.metrics["score.success_under_kill.plain.value"] == \
        pytest.approx(plain.value)
    assert parent.data.metrics["score.machine.memory_spread"] == \
        pytest.approx(card.machine.yardsticks["memory"].spread)
    # The dashboard opens on it: the scorecard table first, then the capacity run's page.
    app = app_over(mlflow_store, monkeypatch)
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox[1].value == 0  # the newest scorecard is the first run listed
    table = app.dataframe[0].value
    assert list(table["dimension"]) == ["capacity at the SLO", "P99 at a fixed load",
                                        "success under a replica kill", "cold start to serving",
                                        "SLO-violating seconds in a spike",
                                        "replica-seconds in a spike"]
    shown = table.set_index("dimension").loc["success under a replica kill"]
    assert shown["plain [95% CI]"].startswith(f"{plain.value * 100:.1f} [")
    said = [box.value for box in (*app.success, *app.warning)]
    assert any(text.startswith("success under a replica kill: ") for text in said)
    assert any(box.value.startswith("load generator: send lag P99 at most ")
               for box in (*app.info, *app.error))
    assert any(box.value.startswith("machine, before and after every trial: a Python loop: ")
               for box in app.info)


def test_a_kill_against_an_endpoint_is_refused_before_anything_runs(tmp_path: Path) -> None:
    config = ScorecardConfig(stacks=["far=http://127.0.0.1:9"], out=tmp_path / "out",
                             workload=workload(tmp_path))
    with pytest.raises(UsageError, match="--kill-trials 0"):
        run_scorecard(config, QuietScorecard())
    assert not (tmp_path / "out").exists()
