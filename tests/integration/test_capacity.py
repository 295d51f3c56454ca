"""`harness capacity` as a user runs it, against test-double endpoints of known capacity: one
answering one request at a time in 50 ms (at most 20 QPS), one answering two at a time (40
QPS, two replicas), one failing everything. Real Locust, real MLflow store, the dashboard's
capacity page over it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from harness.experiments.capacity.search import certain_failure
from harness.report.dashboard_server import APP
from stacks.process import stop_trees
from tests.conftest import start_fakes
from tests.integration.browser import CHROMIUM, SCREENSHOTS, screenshot_charts, served_dashboard
from tests.integration.conftest import harness
from workloads.schedule import file_sha256

SLO_S = 0.5


@dataclass(frozen=True)
class CapacityRun:
    out: Path
    summary: dict[str, Any]
    uri: str
    env: dict[str, str]
    stdout: str


@pytest.fixture(scope="module")
def capacity_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CapacityRun]:
    root = tmp_path_factory.mktemp("capacity")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        urls = start_fakes(root, {"slow": ["--slots", "1", "--latency-ms", "50"],
                                  "fast": ["--slots", "2", "--latency-ms", "50"],
                                  "broken": ["--fail-status", "500"]}, processes)
        fast = root / "fast.yaml"
        fast.write_text(yaml.safe_dump({"name": "fast", "endpoint": urls["fast"],
                                        "replicas": 2}))
        workload = root / "workload.yaml"
        workload.write_text(yaml.safe_dump({
            "name": "capacity_test", "arrival": "poisson", "rate_qps": 1, "duration_s": 1,
            "warmup_s": 5, "timeout_s": 10, "max_in_flight": 64,
            "prompt_tokens": {"mean": 8}, "output_tokens": {"mean": 4}}))
        uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        out = root / "results"
        done = harness("capacity", "--stacks", f"slow={urls['slow']},{fast},"
                       f"broken={urls['broken']}", "--workload", str(workload),
                       "--slo-p99", str(SLO_S), "--trials", "2", "--duration", "3",
                       "--warmup", "1", "--start-qps", "5", "--min-qps", "2.5", "--growth", "3",
                       "--tolerance", "0.5", "--experiment", "capacity-test", "--out", str(out),
                       env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        yield CapacityRun(out, summary, uri, env, done.stdout)
    finally:
        stop_trees(processes, grace_s=5)


def test_each_stack_gets_a_capacity_with_an_interval_and_the_ratio(
        capacity_run: CapacityRun) -> None:
    stacks = capacity_run.summary["stacks"]
    slow, fast = stacks["slow"], stacks["fast"]
    for row in (slow, fast):
        assert row["status"] == "measured", row["note"]
        assert row["ci_low"] <= row["capacity_qps"] <= row["ci_high"]
        assert len(row["trials"]) == 2
        assert row["capacity_qps"] == pytest.approx(
            np.mean([trial["capacity_qps"] for trial in row["trials"]]))
    # 20 QPS at most for one slot of 50 ms; the fast one has twice the slots.
    assert all(trial["capacity_qps"] <= 30 for trial in slow["trials"])
    assert all(mine["capacity_qps"] > theirs["capacity_qps"]
               for mine, theirs in zip(fast["trials"], slow["trials"], strict=True))
    assert slow["per_replica_capacity_qps"] is None  # an endpoint that did not say
    assert fast["per_replica_capacity_qps"] == pytest.approx(fast["capacity_qps"] / 2)
    ratio = capacity_run.summary["ratio"]
    assert (ratio["stack"], ratio["baseline"]) == ("fast", "slow")
    assert ratio["ci_low"] <= ratio["value"] <= ratio["ci_high"]
    assert "t on log ratios" in ratio["method"]
    # What the verdict says follows from the interval: a winner only outside 1.
    if ratio["ci_low"] > 1:
        assert ratio["verdict"].startswith("fast serves more than slow")
    else:
        assert ratio["verdict"].startswith("too close to call")
    assert f"ratio: {ratio['verdict']}" in capacity_run.stdout


def test_a_stack_failing_at_the_lowest_rate_is_reported_as_such(
        capacity_run: CapacityRun) -> None:
    broken = capacity_run.summary["stacks"]["broken"]
    assert broken["status"] == "fails_at_lowest_rate"
    assert broken["capacity_qps"] is None
    assert "even at 2.5 QPS" in broken["note"]
    # Its first search starts where the one just before it (fast's) found its capacity and
    # comes down to the floor; its second, having never bracketed one, from the start.
    first, second = ([probe["rate_qps"] for probe in broken["probes"] if probe["trial"] == k]
                     for k in (1, 2))
    assert first[0] == capacity_run.summary["stacks"]["fast"]["trials"][0]["capacity_qps"]
    assert first == sorted(first, reverse=True)
    assert first[-1] == 2.5
    assert second == [5.0, 2.5]
    assert all(probe["stopped_early"] for probe in broken["probes"])  # at its first failure
    assert capacity_run.summary["ratios"]["broken"]["value"] is None
    assert capacity_run.summary["ratios"]["broken"]["verdict"].startswith(
        "no ratio: broken has no capacity")
    assert "ratio: no ratio: broken has no capacity" in capacity_run.stdout


def test_every_probe_is_saved_and_judged_from_its_records(capacity_run: CapacityRun) -> None:
    out = capacity_run.out
    by_rate: dict[float, set[str]] = {}
    for name, row in capacity_run.summary["stacks"].items():
        assert {probe["trial"] for probe in row["probes"]} == {1, 2}
        for probe in row["probes"]:
            records = pd.read_parquet(out / probe["records"])
            schedule = out / probe["schedule"]
            assert probe["schedule_sha256"] == file_sha256(schedule)
            by_rate.setdefault(probe["rate_qps"], set()).add(probe["schedule_sha256"])
            # One row per scheduled request: nothing leaves the statistics.
            assert len(records) == schedule.read_text().count("\n") - 1  # less the header
            measured = records[(records["scheduled_s"] >= 1) & (records["scheduled_s"] < 4)]
            assert probe["requests"] == len(measured)
            ok = measured[measured["ok"]]
            if probe["stopped_early"]:
                # Stopped only on what its records already proved.
                assert not probe["passed"]
                # (error is <NA> for a success: NA compares to nothing, so fill it first)
                finished = measured[measured["error"].fillna("") != "stopped"]
                answered = finished[finished["ok"]]
                late = int(((answered["done_s"] - answered["scheduled_s"]) > SLO_S).sum())
                failed = int((~finished["ok"]).sum())
                assert certain_failure(len(measured), failed, late, 0.9999), probe
                continue
            p99 = float(np.quantile(ok["done_s"] - ok["scheduled_s"], 0.99))
            assert probe["latency_p99_s"] == pytest.approx(p99)
            assert probe["passed"] == (p99 <= SLO_S and len(ok) == len(measured)), name
        assert (out / name / "trial-1" / "probe-1" / "logs" / "locust.log").is_file()
    # The same rate is the same schedule for every stack.
    assert all(len(hashes) == 1 for hashes in by_rate.values())
    probed_by = [{name for name, row in capacity_run.summary["stacks"].items()
                  if rate in {probe["rate_qps"] for probe in row["probes"]}} for rate in by_rate]
    assert any(len(stacks) > 1 for stacks in probed_by)  # so the line above checked a sharing


def test_a_later_trial_starts_where_the_last_one_found_the_capacity(
        capacity_run: CapacityRun) -> None:
    for name in ("slow", "fast"):
        row = capacity_run.summary["stacks"][name]
        first, second = row["trials"]
        later = [probe for probe in row["probes"] if probe["trial"] == 2]
        assert later[0]["rate_qps"] == first["capacity_qps"], name
        assert second["probes"] <= first["probes"], name
    # A stack that never passed has nothing to start from: its second search is its first.
    broken = capacity_run.summary["stacks"]["broken"]["probes"]
    assert [p["rate_qps"] for p in broken if p["trial"] == 2] == [5.0, 2.5]


def test_capacity_runs_are_logged_like_comparisons(capacity_run: CapacityRun) -> None:
    store = MlflowClient(tracking_uri=capacity_run.uri)
    experiment = store.get_experiment_by_name("capacity-test")
    assert experiment is not None
    runs = store.search_runs([experiment.experiment_id])
    (parent,) = [run for run in runs if run.data.tags["harness.role"] == "capacity"]
    children = [run for run in runs if run.data.tags["harness.role"] == "capacity_trial"]
    assert len(children) == 3 * 2
    assert f"mlflow: run {parent.info.run_id}" in capacity_run.stdout
    summary = capacity_run.summary
    assert parent.data.metrics["fast.capacity_qps"] == summary["stacks"]["fast"]["capacity_qps"]
    assert parent.data.metrics["ratio.fast.value"] == summary["ratio"]["value"]
    assert "broken.capacity_qps" not in parent.data.metrics  # no number where there is none
    assert parent.data.params["slo.p99_s"] == str(SLO_S)
    artifacts = {item.path for item in store.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "run.json", "specs", "schedules", "figures"} <= artifacts
    assert [item.path for item in store.list_artifacts(parent.info.run_id, "figures")] == [
        "figures/capacity.html"]
    fast_1 = next(run for run in children if run.data.tags["harness.stack"] == "fast"
                  and run.data.tags["harness.trial"] == "1")
    assert fast_1.data.tags["mlflow.parentRunId"] == parent.info.run_id
    probes = [probe for probe in summary["stacks"]["fast"]["probes"] if probe["trial"] == 1]
    history = store.get_metric_history(fast_1.info.run_id, "probe.rate_qps")
    assert [(point.step, point.value) for point in history] == [
        (probe["probe"], probe["rate_qps"]) for probe in probes]
    assert fast_1.data.metrics["capacity_qps"] == summary["stacks"]["fast"]["trials"][0][
        "capacity_qps"]
    again = harness("log", str(capacity_run.out), env=capacity_run.env)
    assert again.returncode == 0, again.stderr
    assert f"mlflow: run {parent.info.run_id}" in again.stdout  # logged once, found again


def test_the_dashboard_shows_the_capacity_run(capacity_run: CapacityRun,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", capacity_run.uri)
    app = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox[1].value is not None
    tiles = {tile.label: tile.value for tile in app.metric}
    fast = capacity_run.summary["stacks"]["fast"]
    assert tiles["fast: capacity per replica"] == f"{fast['per_replica_capacity_qps']:,.1f} QPS"
    assert tiles["broken: capacity"] == "fails at lowest rate"
    assert "no ratio: broken has no capacity" in [error.value for error in app.error][0]
    table = app.dataframe[0].value
    assert list(table["stack"]) == ["slow", "fast", "broken"]
    probes = app.dataframe[1].value
    assert len(probes) == sum(len(row["probes"])
                              for row in capacity_run.summary["stacks"].values())


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (`make test` "
                    "installs it)")
def test_a_browser_sees_the_capacity_curves(capacity_run: CapacityRun, tmp_path: Path) -> None:
    with served_dashboard(capacity_run.env, tmp_path / "dashboard.log") as url:
        # The capacity bars, latency against offered load, success against offered load.
        text = screenshot_charts(url, 3, (SCREENSHOTS or tmp_path) / "dashboard-capacity.png")
    assert "Latency against offered load" in text
    assert "no ratio: broken has no capacity" in text
