"""The same records give the same summary: records saved from real runs on the embedded
default (`tests/fixtures/saved/`, a `harness run` and a `harness capacity` of both stacks),
run through today's code, give every figure the summary their run wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from harness.experiments.capacity.search import Probe, SearchConfig, SearchResult
from harness.experiments.capacity.summary import Judging, Searched, capacity_summary, judge_probe
from harness.experiments.run import comparison_summary
from harness.measure.metrics import Window
from harness.report.results import CapacitySummary, ComparisonSummary, ProbeRow, read_result
from harness.workload.spec import WorkloadSpec

SAVED = Path(__file__).resolve().parents[2] / "fixtures" / "saved"


def written(folder: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    return summary


def workload(folder: Path) -> WorkloadSpec:
    return WorkloadSpec.model_validate(yaml.safe_load((folder / "specs" / "workload.yaml")
                                                      .read_text()))


def test_a_saved_runs_records_give_every_figure_its_summary_holds() -> None:
    folder = SAVED / "run"
    old = written(folder)
    trials = {stack: [pd.read_parquet(path)
                      for path in sorted((folder / stack / "records").glob("trial-*.parquet"))]
              for stack in old["stacks"]}
    again = json.loads(comparison_summary(old["run"], workload(folder), old["schedule_sha256"],
                                          trials, None).to_json())
    # Every figure the old code wrote, unchanged; figures added since come on top.
    for stack, figures in again["stacks"].items():
        assert {key: figures[key] for key in old["stacks"][stack]} == old["stacks"][stack]
    assert {key: again[key] for key in old} == {**old, "stacks": again["stacks"]}
    assert read_result(folder / "summary.json", ComparisonSummary).stacks["diy"].requests > 0


def search_result(probes: list[ProbeRow]) -> SearchResult:
    """A trial's search as its probes left it: the highest passing and lowest failing rate."""
    passed = [probe.rate_qps for probe in probes if probe.passed]
    failed = [probe.rate_qps for probe in probes if not probe.passed]
    return SearchResult(max(passed, default=None), [
        Probe(probe.rate_qps, probe.passed, probe.latency_p99_s or float("nan"),
              probe.success_rate or float("nan"), probe.throughput_qps) for probe in probes],
        min(failed, default=None))


def test_a_saved_capacity_runs_records_give_every_figure_its_summary_holds() -> None:
    folder = SAVED / "capacity"
    old = written(folder)
    judging = Judging(Window(old["window"]["start_s"], old["window"]["length_s"]),
                      old["slo"]["p99_s"], old["slo"]["min_success"], workload(folder).stream)
    search = SearchConfig(**{key: old["search"][key] for key in (
        "start_qps", "min_qps", "growth", "tolerance", "max_qps", "max_probes")})
    searched = {}
    for stack, row in old["stacks"].items():
        probes = [judge_probe(pd.read_parquet(folder / probe["records"]), judging,
                              probe["stopped_early"],
                              **{key: probe[key] for key in (
                                  "trial", "probe", "rate_qps", "drained_s", "schedule_sha256",
                                  "schedule", "records")})
                  for probe in row["probes"]]
        results = [search_result([probe for probe in probes if probe.trial == trial["trial"]])
                   for trial in row["trials"]]
        searched[stack] = Searched(row["replicas"], results, probes)
    header = {key: old[key] for key in ("run", "workload", "search", "trials")}
    again = capacity_summary(header, judging, search, searched, None)
    # Every figure the old code wrote, unchanged; figures added since come on top.
    assert holds(json.loads(again.to_json()), old)
    assert read_result(folder / "summary.json", CapacitySummary).stacks.keys() == \
        again.stacks.keys()


def holds(new: Any, old: Any) -> bool:
    """Whether `new` holds everything `old` does, with the same values (dicts may add keys)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(key in new and holds(new[key], value)
                                             for key, value in old.items())
    if isinstance(old, list):
        return isinstance(new, list) and len(new) == len(old) and all(
            holds(a, b) for a, b in zip(new, old, strict=True))
    return bool(new == old)
