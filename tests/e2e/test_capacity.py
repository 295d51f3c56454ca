"""A short `harness capacity` of both stacks with real vLLM on the embedded model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from harness.measure.records import STOPPED

pytestmark = pytest.mark.e2e


def test_a_short_capacity_search_of_both_stacks(tmp_path: Path, mlflow_store: str) -> None:
    out = tmp_path / "capacity"
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "capacity", "--stacks", "diy,optimized",
         "--trials", "1", "--duration", "4", "--warmup", "2", "--start-qps", "2",
         "--min-qps", "1", "--growth", "2", "--tolerance", "0.5", "--max-probes", "4",
         "--out", str(out)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"summary: {out / 'summary.json'}" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    # The run's first search starts at --start-qps; the next stack's first search starts at
    # the capacity the first one found, where it closed its bracket (`CapacityExperiment.hint`).
    diy_search = summary["stacks"]["diy"]["trials"][0]
    bracketed = diy_search["failing_qps"] is not None
    starts = {"diy": 2.0, "optimized": diy_search["capacity_qps"] if bracketed else 2.0}
    for name in ("diy", "optimized"):
        row = summary["stacks"][name]
        # A 4 s probe is short, and the first after a start can hold one request of over 1 s,
        # so a search may step down: what holds is that it ends with a capacity within the
        # searched range.
        assert row["status"] in ("measured", "lower_bound"), row["note"]
        assert row["capacity_qps"] >= 1
        assert row["replicas"] == 2
        assert row["per_replica_capacity_qps"] == pytest.approx(row["capacity_qps"] / 2)
        assert row["ci_low"] is None  # one trial: no interval is made up
        first = row["probes"][0]
        assert first["rate_qps"] == starts[name]
        # A probe stopped once its failure was certain counts the requests it cut off as
        # failures (`stopped`); the stack itself answered every request it was sent.
        assert first["errors"].get(STOPPED, 0) == first["failed_requests"], first["errors"]
        if first["stopped_early"] is None:
            assert first["success_rate"] == 1.0
        assert (out / first["records"]).is_file()
        assert (out / name / "trial-1" / "logs" / "replica-0.log").is_file()
    ratio = summary["ratio"]
    assert ratio["value"] == pytest.approx(summary["stacks"]["optimized"]["capacity_qps"]
                                           / summary["stacks"]["diy"]["capacity_qps"])
    assert "one trial" in ratio["verdict"]
    store = MlflowClient(tracking_uri=mlflow_store)
    experiment = store.get_experiment_by_name("writing_assistant")
    assert experiment is not None, done.stderr[-2000:]
    roles = [run.data.tags["harness.role"] for run in store.search_runs(
        [experiment.experiment_id])]
    assert sorted(roles) == ["capacity", "capacity_trial", "capacity_trial"]
