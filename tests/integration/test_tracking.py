"""Tracking against a real local MLflow store populated by a real short `harness run`."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient

from harness.report.tracking import COMPLETE_TAG
from stacks.process import free_port
from tests.integration.conftest import KEY_VARIABLE, SECRET, LoggedRun, harness

SUMMARY_METRICS = ("throughput_qps", "success_rate", "goodput_qps", "latency_p50_s",
                   "latency_p90_s", "latency_p99_s", "latency_p999_s", "service_p50_s",
                   "service_p99_s", "send_lag_p99_s")


def runs_of(uri: str, experiment: str = "tracking-test") -> tuple[Any, list[Any], list[Any]]:
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment} in {uri}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [run for run in runs if run.data.tags.get("harness.role") == "comparison"]
    children = [run for run in runs if run.data.tags.get("harness.role") == "trial"]
    return client, parents, children


def artifact_texts(client: Any, run_id: str, into: Path) -> dict[str, str]:
    local = Path(client.download_artifacts(run_id, "", str(into)))
    texts = {}
    for path in local.rglob("*"):
        if path.is_file() and path.suffix != ".parquet":
            texts[str(path.relative_to(local))] = path.read_text(errors="replace")
    return texts


def test_a_run_is_a_parent_with_a_child_per_stack_and_trial(logged_run: LoggedRun) -> None:
    client, parents, children = runs_of(logged_run.uri)
    assert len(parents) == 1
    parent = parents[0]
    assert f"mlflow: run {parent.info.run_id}" in logged_run.stdout
    assert parent.data.tags["harness.kind"] == "comparison"
    assert parent.data.tags[COMPLETE_TAG] == "complete"
    assert {(c.data.tags["harness.stack"], c.data.tags["harness.trial"]) for c in children} \
        == {("plain", "1"), ("keyed", "1")}
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert all(run.info.status == "FINISHED" for run in [parent, *children])


def test_params_metrics_and_series(logged_run: LoggedRun) -> None:
    client, parents, children = runs_of(logged_run.uri)
    summary = json.loads((logged_run.results / "summary.json").read_text())
    for child in children:
        params, metrics = child.data.params, child.data.metrics
        assert params["schedule_sha256"] == summary["schedule_sha256"]
        assert params["workload.seed"] == params["seed"]
        assert params["workload.rate_qps"] == "20.0"
        assert int(params["hardware.cpu_cores"]) >= 1
        assert params["git_commit"]
        assert params["stack.name"] == child.data.tags["harness.stack"]
        for name in SUMMARY_METRICS:
            assert name in metrics, name
        stack = summary["stacks"][child.data.tags["harness.stack"]]
        # One trial: the child's figures are the stack's.
        assert metrics["latency_p99_s"] == stack["latency_p99_s"]
        assert metrics["success_rate"] == 1.0
        series = client.get_metric_history(child.info.run_id, "timeseries.throughput_qps")
        assert sorted(point.step for point in series) == [1, 2, 3, 4]
    keyed = next(c for c in children if c.data.tags["harness.stack"] == "keyed")
    assert keyed.data.params["stack.api_key_env"] == KEY_VARIABLE  # the name, not the key
    parent_metrics = parents[0].data.metrics
    assert parent_metrics["plain.latency_p99_s"] == summary["stacks"]["plain"]["latency_p99_s"]
    assert "ratio.keyed.throughput_qps" in parent_metrics


def test_artifacts_are_logged(logged_run: LoggedRun, tmp_path: Path) -> None:
    client, parents, children = runs_of(logged_run.uri)
    top = {item.path for item in client.list_artifacts(parents[0].info.run_id)}
    assert {"summary.json", "run.json", "schedule.jsonl", "specs", "figures"} <= top
    figures = client.list_artifacts(parents[0].info.run_id, "figures")
    assert [item.path for item in figures] == ["figures/comparison.html"]
    for child in children:
        stack = child.data.tags["harness.stack"]
        local = client.download_artifacts(child.info.run_id, "records/trial-1.parquet",
                                          str(tmp_path / stack))
        logged = pd.read_parquet(local)
        saved = pd.read_parquet(logged_run.results / stack / "records" / "trial-1.parquet")
        pd.testing.assert_frame_equal(logged, saved)
        logs = {item.path for item in client.list_artifacts(child.info.run_id, "logs")}
        assert "logs/locust.log" in logs


def test_no_secret_reaches_the_store(logged_run: LoggedRun, tmp_path: Path) -> None:
    # The run's own key, pasted into a spec description, and also planted in a log and a
    # spec of a copy of the results: none of it may reach params, tags or artifacts.
    copy = tmp_path / "copy"
    shutil.copytree(logged_run.results, copy)
    with (copy / "keyed" / "trial-1" / "logs" / "locust.log").open("a") as log:
        log.write(f"\nheaders: {{'authorization': 'Bearer {SECRET}'}}\n")
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    logged = harness("log", str(copy), "--experiment", "secrets",
                     env={**logged_run.env, "MLFLOW_TRACKING_URI": uri})
    assert logged.returncode == 0, logged.stderr
    for store, experiment in ((logged_run.uri, "tracking-test"), (uri, "secrets")):
        client, parents, children = runs_of(store, experiment)
        for run in [*parents, *children]:
            values = [*run.data.params.values(), *run.data.tags.values()]
            assert not [value for value in values if SECRET in value]
            texts = artifact_texts(client, run.info.run_id, tmp_path / run.info.run_id)
            assert texts, "artifacts were logged"
            assert not [name for name, text in texts.items() if SECRET in text]
        # The whole database, as bytes: nothing anywhere in it.
        database = Path(store.removeprefix("sqlite:///"))
        with sqlite3.connect(database) as connection:
            dump = "\n".join(connection.iterdump())
        assert SECRET not in dump


def test_logging_again_adds_nothing(logged_run: LoggedRun) -> None:
    again = harness("log", str(logged_run.results), env=logged_run.env)
    assert again.returncode == 0, again.stderr
    _, parents, children = runs_of(logged_run.uri)
    assert len(parents) == 1
    assert len(children) == 2
    assert f"mlflow: run {parents[0].info.run_id}" in again.stdout


def test_a_logging_cut_short_is_redone(logged_run: LoggedRun, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(logged_run.results, copy)
    env = {**logged_run.env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    assert harness("log", str(copy), "--experiment", "redo", env=env).returncode == 0
    client, parents, _ = runs_of(env["MLFLOW_TRACKING_URI"], "redo")
    client.delete_tag(parents[0].info.run_id, COMPLETE_TAG)  # as if cut short before the end
    assert harness("log", str(copy), "--experiment", "redo", env=env).returncode == 0
    _, parents_after, children_after = runs_of(env["MLFLOW_TRACKING_URI"], "redo")
    assert len(parents_after) == 1
    assert len(children_after) == 2
    assert parents_after[0].info.run_id != parents[0].info.run_id
    assert parents_after[0].data.tags[COMPLETE_TAG] == "complete"


def test_an_unreachable_store_warns_once_and_the_run_is_logged_later(
        logged_run: LoggedRun, tmp_path: Path) -> None:
    workload = tmp_path / "workload.yaml"
    shutil.copy(logged_run.results / "specs" / "workload.yaml", workload)
    stacks = ",".join(str(logged_run.results / "specs" / f"{name}.yaml")
                      for name in ("keyed",))
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    out = tmp_path / "results"
    done = harness("run", "--stacks", stacks, "--workload", str(workload), "--duration", "2",
                   "--out", str(out), env={**logged_run.env, "MLFLOW_TRACKING_URI": down})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "summary.json").is_file()
    warnings = [line for line in done.stderr.splitlines() if "warning:" in line
                and "MLflow" in line]
    assert len(warnings) == 1, done.stderr
    assert f"harness log {out}" in done.stderr.replace("\n", "")
    # Logged later to a store that answers (its own: the shared one stays as the run left it).
    store = f"sqlite:///{tmp_path / 'later' / 'mlflow.db'}"
    later = harness("log", str(out), env={**logged_run.env, "MLFLOW_TRACKING_URI": store})
    assert later.returncode == 0, later.stderr
    _, parents, children = runs_of(store, "tracking_test")
    assert [run.data.tags["harness.results_dir"] for run in parents] == [str(out)]
    assert [run.data.tags["harness.stack"] for run in children] == ["keyed"]


def test_log_of_a_folder_that_is_no_run_says_what_to_pass(tmp_path: Path,
                                                          logged_run: LoggedRun) -> None:
    done = harness("log", str(tmp_path), env=logged_run.env)
    assert done.returncode == 2
    assert "run.json is missing" in done.stderr
    assert "harness run" in done.stderr
