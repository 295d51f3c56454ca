"""`harness run --scenario <shape> --ablate-scaling` against test-double replicas: each policy
replays the same spike, the autoscaler's log is kept beside the records, and the summary holds
each stack's scaling metrics and the studied policy's ratios to the others."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from harness.experiments.recover import recover_run
from harness.experiments.run import RunConfig, run_experiment
from harness.report.dashboard_server import APP
from harness.report.figures import comparison_figures
from harness.report.results import ComparisonSummary
from harness.report.scaling_tables import scaling_ratio_table, scaling_table
from harness.report.tracking import log_results
from stacks import launcher
from stacks.spec import StackSpec
from tests.integration.test_run import QuietRun, workload


@pytest.fixture
def slow_fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def argv(spec: StackSpec, port: int) -> list[str]:
        return [sys.executable, "-m", "tests.fakes.fake_openai_server", "--port", str(port),
                "--name", f"fake-{port}", "--latency-ms", "300"]

    monkeypatch.setattr(launcher, "replica_argv", argv)


def scaled_stack(tmp_path: Path) -> str:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    path = tmp_path / "scaled.yaml"
    path.write_text(yaml.safe_dump({
        "name": "scaled", "engine": {"model": str(model)}, "replicas": 2,
        "balancer": {"policy": "p2c", "health_interval_s": 0.2}, "cpu": {"binding": "none"},
        "autoscaling": {"policy": "asymmetric", "min_replicas": 1, "max_replicas": 2,
                        "target_concurrency": 2, "interval_s": 0.25, "metric_window_s": 1,
                        "window_s": 1, "up_window_s": 0, "down_window_s": 30}}))
    return str(path)


def spike(tmp_path: Path) -> str:
    path = tmp_path / "spike.yaml"
    path.write_text(yaml.safe_dump({"name": "test_spike", "autoscale": True, "stages": [
        {"kind": "steady", "qps": 3, "duration_s": 2},
        {"kind": "steady", "qps": 30, "duration_s": 5},
        {"kind": "steady", "qps": 3, "duration_s": 4}]}))
    return str(path)


@pytest.mark.usefixtures("slow_fake_engine")
def test_each_policy_replays_the_spike_and_is_summarized(tmp_path: Path,
                                                         mlflow_store: str) -> None:
    config = RunConfig(stacks=[scaled_stack(tmp_path)], workload=workload(tmp_path),
                       scenario=spike(tmp_path), ablate_scaling=True, out=tmp_path / "out")
    path = run_experiment(config, QuietRun())
    raw = json.loads(path.read_text())
    summary = ComparisonSummary.model_validate(raw)
    assert list(summary.stacks) == ["scaled", "scaled-static", "scaled-symmetric"]
    scaling = {name: figures.scaling for name, figures in summary.stacks.items()}
    assert all(report is not None for report in scaling.values())
    asymmetric, static, symmetric = (scaling[name] for name in summary.stacks)
    assert asymmetric is not None
    assert static is not None
    assert symmetric is not None
    assert (asymmetric.policy, static.policy, symmetric.policy) == (
        "asymmetric", "static", "symmetric")
    assert asymmetric.scale_ups >= 1
    assert asymmetric.cold_starts >= 1
    assert asymmetric.scale_downs == 0  # its down window outlasts the trial
    assert symmetric.scale_downs >= 1  # its 1 s window does not
    assert (static.scale_ups, static.scale_downs) == (0, 0)
    window_s = summary.stacks["scaled-static"].window_s
    assert static.replica_seconds == pytest.approx(2 * window_s, rel=0.05)
    assert asymmetric.replica_seconds is not None
    assert window_s < asymmetric.replica_seconds < 2 * window_s
    assert all(report.failed_by_scaling == 0 for report in scaling.values() if report)
    assert {figures.success_rate for figures in summary.stacks.values()} == {1.0}
    ablation = summary.scaling_ablation
    assert ablation is not None
    assert (ablation.stack, ablation.policy) == ("scaled", "asymmetric")
    assert set(ablation.ratios) == {"static", "symmetric"}
    assert ablation.ratios["static"]["replica_seconds"] == pytest.approx(
        asymmetric.replica_seconds / static.replica_seconds)
    # The autoscaler's log is kept beside the records, on their clock, and drawn.
    out = tmp_path / "out"
    frames = {name: [pd.read_parquet(out / name / "scaling" / "trial-1.parquet")]
              for name in summary.stacks}
    ticks = frames["scaled"][0].query("event == 'tick'")["offset_s"]
    measured = summary.window.window()
    assert ticks.min() < measured.start_s
    assert ticks.max() > measured.end_s - 1
    records = {name: pd.read_parquet(out / name / "records" / "trial-1.parquet")
               for name in summary.stacks}
    timeline = comparison_figures(records, summary, frames)["scaling_timeline"]
    assert {trace.name for trace in timeline.data} >= {"offered", "scaled: ready",
                                                       "scaled: scale up"}
    table = scaling_table(summary)
    ratios = scaling_ratio_table(summary)
    assert table is not None
    assert ratios is not None
    assert [row[0] for row in ratios.rows] == ["scaled ÷ scaled-static"] * 3 + [
        "scaled ÷ scaled-symmetric"] * 3 + ["scaled vs scaled-static"]
    # A summary rebuilt from what the run wrote holds the same scaling report.
    rebuilt = recover_run(out)
    assert {name: f.scaling for name, f in rebuilt.stacks.items()} == scaling
    assert rebuilt.scaling_ablation == ablation
    # The fakes answer in 300 ms however many wait: every P99 is within the SLO.
    assert ratios.rows[-1][1:] == ["P99 overall", ratios.rows[-1][2], "both ≤ 1,000.0 ms", "met"]
    assert re.fullmatch(r"[\d,.]+ ms vs [\d,.]+ ms", ratios.rows[-1][2])
    # MLflow: the scaling figures on the parent run, the fleet per second on each trial.
    client = MlflowClient(tracking_uri=mlflow_store)
    parent = client.get_run(log_results(out, "scaling-test", mlflow_store))
    assert parent.data.metrics["scaled.scaling.replica_seconds"] == asymmetric.replica_seconds
    # Violating seconds are 0 for every policy here: their ratio, 0 ÷ 0, is left out.
    assert parent.data.metrics["scaling_ablation.symmetric.replica_seconds"] == pytest.approx(
        ablation.ratios["symmetric"]["replica_seconds"])
    assert "scaling_ablation.symmetric.slo_violating_s" not in parent.data.metrics
    child = client.search_runs([parent.info.experiment_id],
                               "tags.`harness.stack` = 'scaled'")[0]
    ready = client.get_metric_history(child.info.run_id, "timeseries.replicas_ready")
    assert {point.value for point in ready} == {1.0, 2.0}
    assert [a.path for a in client.list_artifacts(child.info.run_id, "scaling")] == [
        "scaling/trial-1.parquet"]
    # The dashboard, on that store (MLFLOW_TRACKING_URI), shows the scaling tables and the
    # timeline with its marks.
    app = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    cells = {str(cell) for frame in app.dataframe for cell in frame.value.to_numpy().ravel()}
    assert {"scaled ÷ scaled-symmetric", "scaled vs scaled-static"} <= cells
    charts = [chart.proto.spec for chart in app.get("plotly_chart")]
    assert any('"scaled: scale up"' in spec and '"offered"' in spec for spec in charts)

