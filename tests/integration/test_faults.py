"""Scenarios' faults played during `harness run`, with fake OpenAI servers (test doubles) standing
in for vLLM replicas under the real launcher, balancer, supervisor and Locust: the fault lands
on the replay's clock, and the reliability report tells the two balancers apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from harness.experiments.run import RunConfig, run_experiment
from harness.report.log_folder import log_saved
from harness.report.reliability_tables import faults_table, reliability_table
from harness.report.results import ComparisonSummary, read_result
from stacks import launcher
from tests.integration.test_dashboard import app_over
from tests.integration.test_run import QuietRun, workload


def stack_file(tmp_path: Path, name: str, balancer: dict[str, Any]) -> str:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "engine": {"model": str(model)},
                                    "replicas": 2, "balancer": balancer,
                                    "startup_timeout_s": 30}))
    return str(path)


def scenario_file(tmp_path: Path, *faults: dict[str, Any]) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump({"name": "test_faults", "faults": list(faults)}))
    return str(path)


def plain_and_guarded(tmp_path: Path) -> list[str]:
    """A round-robin stack with no defences, and a P2C one with health checks and retries."""
    return [stack_file(tmp_path, "plain", {"policy": "round_robin"}),
            stack_file(tmp_path, "guarded", {"policy": "p2c", "health_interval_s": 0.2,
                                             "retry": True})]


@pytest.mark.usefixtures("fake_engine")
def test_a_killed_replica_costs_round_robin_and_not_the_guarded_balancer(
        tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake replica restarted within one round-robin slot (100 ms at 20 QPS) would leave
    # nothing sent to it while down; a real engine takes seconds, so the fakes take 800 ms.
    fake = launcher.replica_argv
    monkeypatch.setattr(launcher, "replica_argv",
                        lambda spec, port: [*fake(spec, port), "--start-delay-ms", "800"])
    config = RunConfig(stacks=plain_and_guarded(tmp_path), out=tmp_path / "out",
                       workload=workload(tmp_path, rate_qps=20, duration_s=6),
                       scenario=scenario_file(tmp_path, {"kind": "kill_replica", "at_s": 1,
                                                         "replica": 0}))
    summary = read_result(run_experiment(config, QuietRun()), ComparisonSummary)
    assert summary.scenario == "test_faults"
    for name in ("plain", "guarded"):
        logged = [json.loads(line) for line in
                  (tmp_path / "out" / name / "trial-1" / "faults.jsonl").read_text().splitlines()]
        assert len(logged) == 1
        assert logged[0]["replica"] == "replica-0"
        # Acted on at its planned time on the replay's clock (warm-up 1 s + at_s 1 s).
        assert logged[0]["planned_s"] == 2.0
        assert abs(logged[0]["offset_s"] - 2.0) < 0.25
    plain, guarded = (summary.stacks[name].reliability for name in ("plain", "guarded"))
    assert plain is not None
    assert guarded is not None
    (plain_fault,), (guarded_fault,) = plain.faults, guarded.faults
    # Round-robin with no health checks never ejects; the supervisor restarts the replica.
    assert plain_fault.detect_s is None
    assert plain.undetected == 1
    assert plain_fault.recover_s is not None
    assert 0 < plain_fault.recover_s < 5
    assert plain.failed_by_cause.get("during_fault", 0) > 0  # sent to the dead replica
    # The guarded balancer ejects it at the first refused connection or failed probe.
    assert guarded_fault.detect_s is not None
    assert guarded_fault.detect_s < 1.0
    assert guarded_fault.recover_s is not None
    assert guarded.failed_by_cause.get("during_fault", 0) == 0
    # Every failure of the guarded stack was in flight on the killed replica.
    assert set(guarded.failed_by_cause) <= {"in_flight"}
    # (one finishing within a millisecond of the kill may still succeed: "in flight" is
    # judged on the load generator's clock)
    assert guarded_fault.in_flight_failed <= guarded_fault.in_flight
    assert summary.stacks["guarded"].failed_requests == guarded_fault.in_flight_failed
    assert summary.stacks["plain"].failed_requests > summary.stacks["guarded"].failed_requests
    assert guarded.retries is not None
    assert plain.retries == 0
    table = reliability_table(summary)
    assert table is not None
    assert table.columns == ["metric", "plain", "guarded"]
    faults = faults_table(summary)
    assert faults is not None
    assert [row[0] for row in faults.rows] == ["plain", "guarded"]
    # MLflow carries the report's figures, and each trial's faults beside its logs.
    logged = MlflowClient(mlflow_store).get_run(log_saved(tmp_path / "out"))
    assert logged.data.metrics["guarded.reliability.detect_s_median"] == \
        pytest.approx(guarded.detect_s_median)
    assert logged.data.metrics["plain.reliability.failed_by_cause.during_fault"] == \
        plain.failed_by_cause["during_fault"]
    # The dashboard shows the reliability tables, and marks the kill on its charts over time.
    app = app_over(mlflow_store, monkeypatch)
    assert not app.exception, [e.value for e in app.exception]
    tables = {tuple(frame.value.columns): frame.value for frame in app.dataframe}
    shown = tables[("metric", "plain", "guarded")].set_index("metric")
    assert shown.loc["failed: sent during a fault", "plain"] == \
        str(plain.failed_by_cause["during_fault"])
    assert ("stack", "trial", "fault", "replica", "at (in window)", "in flight", "their fates",
            "detected", "recovered") in tables
    charts = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    marked = [chart for chart in charts
              if any(note.get("text") == "kill replica-0"
                     for note in chart["layout"].get("annotations", []))]
    assert len(marked) == 3  # throughput, P99 and errors over time


@pytest.mark.usefixtures("fake_engine")
def test_a_hung_replica_is_resumed_and_its_fault_marked(tmp_path: Path) -> None:
    config = RunConfig(
        stacks=[stack_file(tmp_path, "plain", {"policy": "round_robin"})],
        out=tmp_path / "out", workload=workload(tmp_path, rate_qps=10, duration_s=5),
        scenario=scenario_file(tmp_path, {"kind": "hang_replica", "at_s": 1, "replica": 1,
                                          "for_s": 1.5}))
    summary = read_result(run_experiment(config, QuietRun()), ComparisonSummary)
    report = summary.stacks["plain"].reliability
    assert report is not None
    (fault,) = report.faults
    assert fault.kind == "hang_replica"
    assert fault.replica == "replica-1"
    assert fault.recover_s == pytest.approx(1.5, abs=0.3)  # resumed, never ejected
    # Requests held by the frozen replica finish once it resumes: late, not failed.
    assert summary.stacks["plain"].failed_requests == 0
    assert summary.stacks["plain"].latency_p999_s > 1.0


@pytest.mark.usefixtures("fake_engine")
def test_the_ablation_under_faults_shows_each_defence_s_share(tmp_path: Path) -> None:
    guarded = stack_file(tmp_path, "guarded", {
        "policy": "round_robin", "health_interval_s": 0.2, "retry": True,
        "outlier": {"consecutive_5xx": 5, "base_ejection_s": 30}})
    config = RunConfig(stacks=[guarded], out=tmp_path / "out", ablate=True,
                       workload=workload(tmp_path, rate_qps=20, duration_s=5),
                       scenario=scenario_file(tmp_path, {"kind": "kill_replica", "at_s": 1,
                                                         "replica": 0}))
    summary = read_result(run_experiment(config, QuietRun()), ComparisonSummary)
    assert summary.ablation is not None
    shares = summary.ablation.contributions
    assert set(shares) == {"health", "outlier", "retry"}
    assert {name: share.variant for name, share in shares.items()} == {
        "health": "guarded-no-health", "outlier": "guarded-no-outlier",
        "retry": "guarded-no-retry"}
    # Without health checks, outlier ejection still takes the dead replica out after 5
    # refused attempts, each retried; without retries, those and what was in flight fail.
    assert shares["retry"].success_rate is not None
    assert shares["retry"].success_rate > 1.0
    for variant in ("guarded-no-health", "guarded-no-outlier", "guarded-no-retry"):
        assert summary.stacks[variant].reliability is not None
