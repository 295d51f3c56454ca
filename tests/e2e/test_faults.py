"""Faults against real vLLM replicas: the optimized stack, one replica frozen and then the other
killed, through `harness run --scenario` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e


def test_a_frozen_then_a_killed_vllm_replica_under_the_optimized_stack(tmp_path: Path) -> None:
    scenario = tmp_path / "hang_then_kill.yaml"
    scenario.write_text(yaml.safe_dump({"name": "hang_then_kill", "faults": [
        {"kind": "hang_replica", "at_s": 2, "replica": 1, "for_s": 4},
        {"kind": "kill_replica", "at_s": 9, "replica": 0}]}))
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--stacks", "optimized", "--rate", "2",
         "--duration", "15", "--scenario", str(scenario), "--out", str(out)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scenario hang_then_kill · reliability" in done.stdout
    trial = out / "optimized" / "trial-1"
    played = [json.loads(line) for line in (trial / "faults.jsonl").read_text().splitlines()]
    assert [(f["kind"], f["replica"]) for f in played] == [("hang_replica", "replica-1"),
                                                           ("kill_replica", "replica-0")]
    warmup = 10  # the default workload's
    for fault, planned in zip(played, (warmup + 2, warmup + 9), strict=True):
        assert abs(fault["offset_s"] - planned) < 0.25, fault
    # The kill took the replica's whole tree down: the supervisor saw it exit on SIGKILL.
    exits = [json.loads(line) for line in (trial / "logs" / "events.jsonl").read_text()
             .splitlines() if '"replica_exited"' in line]
    assert [(e["replica"], e["code"]) for e in exits] == [("replica-0", -9)]
    summary = json.loads((out / "summary.json").read_text())
    report = summary["stacks"]["optimized"]["reliability"]
    kill = next(f for f in report["faults"] if f["kind"] == "kill_replica")
    assert kill["detect_s"] is not None  # ejected by its balancer
    assert kill["detect_s"] < 5
    # A request on the killed replica is retried elsewhere; whatever failed was in flight.
    assert set(report["failed_by_cause"]) <= {"in_flight"}, report["failures"]
    hang = next(f for f in report["faults"] if f["kind"] == "hang_replica")
    assert hang["recover_s"] is not None
    assert hang["recover_s"] >= 3.9
