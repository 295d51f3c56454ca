"""`harness mechanisms` on launched stacks whose replicas are fake OpenAI servers (test doubles)
under the real launcher, supervisor, balancer and Locust: each mechanism is a run of its two
variants; a saturated replay ends with its window; the P2C load is the set fraction of what the
calibration answered; the gains reach disk, MLflow and the dashboard's waterfall."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from harness.experiments import mechanisms as experiment
from harness.experiments.mechanism_plans import PLANS
from harness.experiments.mechanisms import MechanismsConfig, run_mechanisms
from harness.experiments.mechanisms_summary import calibration_folder, saturated_throughput
from harness.report.log_folder import log_saved
from harness.report.mechanisms_results import Mechanisms
from harness.report.results import read_result
from tests.integration.test_dashboard import app_over
from tests.integration.test_faults import scenario_file, stack_file
from tests.integration.test_run import QuietRun, workload


@pytest.mark.usefixtures("fake_engine")
def test_each_mechanism_is_a_run_of_its_two_variants_and_its_gain_reaches_the_dashboard(
        tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = stack_file(tmp_path, "base", {"policy": "round_robin"})
    source = stack_file(tmp_path, "tuned", {"policy": "p2c", "load_interval_s": 0.2})
    tuned = yaml.safe_load(Path(source).read_text())
    tuned["engine"]["api_server_count"] = 2
    Path(source).write_text(yaml.safe_dump(tuned))
    # The fake replicas answer in 150 ms: 4 senders saturate them at about 27 QPS.
    saturating = workload(tmp_path, rate_qps=100, duration_s=3, warmup_s=1, max_in_flight=4)
    monkeypatch.setitem(PLANS, "multi_api",
                        dataclasses.replace(PLANS["multi_api"], workload=saturating))
    monkeypatch.setitem(PLANS, "p2c", dataclasses.replace(
        PLANS["p2c"], workload=saturating, scenario=scenario_file(
            tmp_path, {"kind": "slow_replica", "at_s": 0.5, "replica": 0, "for_s": 2,
                       "factor": 2, "period_s": 0.2})))
    monkeypatch.setattr(experiment, "P2C_DURATION_S", 3.0)
    monkeypatch.setattr(experiment, "CALIBRATION_DURATION_S", 3.0)
    monkeypatch.setattr(experiment, "CALIBRATION_IN_FLIGHT", 4)
    out = tmp_path / "out"
    path = run_mechanisms(MechanismsConfig(
        mechanisms=["multi_api", "p2c"], baseline=baseline, source=source, trials=2,
        load_fraction=0.5, out=out), QuietRun())
    result = read_result(path, Mechanisms)
    assert result.pending == []
    multi_api, p2c = result.mechanisms
    assert (multi_api.off.stack, multi_api.on.stack) == ("base-1r", "base-1r-multi-api")
    assert (p2c.off.stack, p2c.on.stack) == ("base", "base-p2c")
    for mechanism in result.mechanisms:
        assert len(mechanism.off.trials) == len(mechanism.on.trials) == 2
        assert mechanism.gain is not None
        assert mechanism.gain > 0
        assert mechanism.gain_ci_low is not None
        assert mechanism.gain_ci_high is not None
    # A saturated replay ended with its window: the schedule's last requests were never sent.
    records = pd.read_parquet(out / "multi_api" / "base-1r" / "records" / "trial-1.parquet")
    assert (records["error"] == "stopped").sum() > 100
    assert multi_api.notes == []  # 4 senders could not keep up with 100 QPS: saturated
    # The P2C load is the set fraction of what the round-robin stack answered saturated.
    calibrated = saturated_throughput(calibration_folder(out, "p2c"))
    assert calibrated is not None
    assert 10 < calibrated < 40
    rate = yaml.safe_load((out / "p2c" / "specs" / "workload.yaml").read_text())["rate_qps"]
    assert rate == pytest.approx(0.5 * calibrated)
    assert (out / "p2c" / "base" / "trial-1" / "faults.jsonl").is_file()
    # MLflow: a parent over both, each mechanism's comparison linked by its run id.
    store = MlflowClient(mlflow_store)
    parent = store.get_run(log_saved(out))
    assert parent.data.tags["harness.role"] == "mechanisms"
    assert parent.data.metrics["gain.p2c.value"] == pytest.approx(p2c.gain)
    part = store.get_run(parent.data.tags["harness.part.multi_api"])
    assert part.data.tags["harness.role"] == "comparison"
    assert part.data.tags["harness.stacks"] == "base-1r,base-1r-multi-api"
    # The dashboard: the mechanisms run is listed first, and its page draws the waterfall.
    app = app_over(mlflow_store, monkeypatch)
    assert not app.exception, [e.value for e in app.exception]
    runs = app.selectbox[1]
    # Listed above the comparisons it is made of, though they started after it.
    assert [label.split(":")[0] for label in runs.options] == ["mechanisms", *["comparison"] * 3]
    app = runs.set_value(0).run()
    assert not app.exception, [e.value for e in app.exception]
    assert len(app.get("plotly_chart")) == 1  # the waterfall
    table = app.dataframe[0].value
    assert list(table["optimization"]) == [multi_api.label, p2c.label]
