"""A short `harness capacity` of one stack with real vLLM on the embedded model.

What a search does between stacks (each stack's first search from the capacity the one
before it found, the ratio and its interval) is the same code whatever serves, and is
tested against test doubles of known capacity (`tests/integration/test_capacity.py`); here
the probes meet a real engine, for the cost of one start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from harness.measure.records import STOPPED

pytestmark = pytest.mark.e2e


def test_a_short_capacity_search_of_a_real_stack(tmp_path: Path, mlflow_store: str) -> None:
    out = tmp_path / "capacity"
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "capacity", "--stacks", "optimized",
         "--trials", "1", "--duration", "4", "--warmup", "2", "--start-qps", "2",
         "--min-qps", "1", "--growth", "2", "--tolerance", "0.5", "--max-probes", "4",
         "--out", str(out)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"summary: {out / 'summary.json'}" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    row = summary["stacks"]["optimized"]
    # A 4 s probe is short, and the first after a start can hold one request of over 1 s,
    # so a search may step down: what holds is that it ends with a capacity within the
    # searched range.
    assert row["status"] in ("measured", "lower_bound"), row["note"]
    assert row["capacity_qps"] >= 1
    assert row["replicas"] == 2
    assert row["per_replica_capacity_qps"] == pytest.approx(row["capacity_qps"] / 2)
    assert row["ci_low"] is None  # one trial: no interval is made up
    first = row["probes"][0]
    assert first["rate_qps"] == 2.0
    # A probe stopped once its failure was certain counts the requests it cut off as
    # failures (`stopped`); the stack itself answered every request it was sent.
    assert first["errors"].get(STOPPED, 0) == first["failed_requests"], first["errors"]
    if first["stopped_early"] is None:
        assert first["success_rate"] == 1.0
    assert (out / first["records"]).is_file()
    assert (out / "optimized" / "trial-1" / "logs" / "replica-0.log").is_file()
    assert summary["ratio"] is None  # one stack: nothing to compare
    store = MlflowClient(tracking_uri=mlflow_store)
    experiment = store.get_experiment_by_name("writing_assistant")
    assert experiment is not None, done.stderr[-2000:]
    roles = [run.data.tags["harness.role"] for run in store.search_runs(
        [experiment.experiment_id])]
    assert sorted(roles) == ["capacity", "capacity_trial"]
