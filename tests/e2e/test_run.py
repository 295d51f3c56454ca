"""A short `harness run` of both stacks with real vLLM on the embedded model, chat streamed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from harness.workload.spec import load_workload_spec
from workloads.schedule import file_sha256

pytestmark = pytest.mark.e2e


def test_both_stacks_serve_a_low_rate_completely(tmp_path: Path, mlflow_store: str) -> None:
    # The chat variant, streamed, so TTFT and the SSE path are exercised end to end; a short
    # warm-up keeps the test quick.
    spec = load_workload_spec("writing_assistant_chat").model_dump()
    workload = tmp_path / "chat.yaml"
    workload.write_text(yaml.safe_dump({**spec, "warmup_s": 4, "output_tokens": {"mean": 16}}))
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--stacks", "diy,optimized",
         "--workload", str(workload), "--rate", "2", "--duration", "10", "--out", str(out)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"summary: {out / 'summary.json'}" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    schedule_hash = file_sha256(out / "schedule.jsonl")
    for name in ("diy", "optimized"):
        figures = summary["stacks"][name]
        assert figures["success_rate"] == 1.0, figures["errors"]
        assert figures["schedule_sha256"] == schedule_hash
        assert figures["ttft_p50_s"] < figures["latency_p50_s"]
        assert set(figures["replica_share"]) == {"replica-0", "replica-1"}
        records = pd.read_parquet(out / figures["records"])
        measured = records[(records["scheduled_s"] >= 4) & (records["scheduled_s"] < 14)]
        assert (measured["output_tokens"] == 16).all()
        latency = measured["done_s"] - measured["scheduled_s"]
        assert figures["latency_p99_s"] == float(np.quantile(latency, 0.99))
        assert (out / name / "trial-1" / "logs" / "replica-0.log").is_file()
    assert set(summary["ratios"]) == {"optimized"}
    # Logged to the (test's own) MLflow store: a parent and a child per stack, whose figures
    # are the summary's.
    store = MlflowClient(tracking_uri=mlflow_store)
    experiment = store.get_experiment_by_name("writing_assistant_chat")
    assert experiment is not None, done.stderr[-2000:]
    runs = store.search_runs([experiment.experiment_id])
    parents = [run for run in runs if run.data.tags["harness.role"] == "comparison"]
    children = {run.data.tags["harness.stack"]: run for run in runs
                if run.data.tags["harness.role"] == "trial"}
    assert len(parents) == 1
    assert set(children) == {"diy", "optimized"}
    assert f"mlflow: run {parents[0].info.run_id}" in done.stdout
    for name, child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.data.metrics["latency_p99_s"] == summary["stacks"][name]["latency_p99_s"]
        assert child.data.params["stack.engine.args.dtype"] == "bfloat16"


def test_quality_compares_greedy_answers_of_both_stacks(tmp_path: Path, mlflow_store: str) -> None:
    out = tmp_path / "quality"
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "quality", "--prompts", "4", "--max-tokens", "8",
         "--min-agreement", "0", "--out", str(out)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "verdict: PASS" in done.stdout
    result = json.loads((out / "quality.json").read_text())
    assert set(result["answers"]) == {"diy", "optimized"}
    assert all(len(answer["tokens"]) == 8 for answer in result["answers"]["diy"])
    (comparison,) = result["comparisons"]
    assert 0 <= comparison["token_agreement"] <= 1
    assert comparison["first_divergence_min"] <= comparison["first_divergence_mean"] <= 8
    store = MlflowClient(tracking_uri=mlflow_store)
    experiment = store.get_experiment_by_name("writing_assistant-quality")
    assert experiment is not None
    (run,) = store.search_runs([experiment.experiment_id])
    assert run.data.tags["harness.kind"] == "quality"
    assert run.data.metrics["optimized.token_agreement"] == comparison["token_agreement"]
