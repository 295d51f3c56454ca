"""How a summary becomes MLflow params and metrics."""

from __future__ import annotations

import math

from harness.report.results import Agreement, QualityResult, QualitySettings
from harness.report.tracking import MAX_PARAM_CHARS, flatten, quality_verdict, scalar_metrics


def test_flatten_gives_dotted_keys_and_json_values() -> None:
    spec = {"name": "diy", "engine": {"args": {"dtype": "bfloat16", "enforce-eager": True},
                                      "env": {}}, "replicas": 2, "tags": ["a", "b"]}
    assert flatten(spec, "stack.") == {
        "stack.name": "diy", "stack.engine.args.dtype": "bfloat16",
        "stack.engine.args.enforce-eager": "true", "stack.engine.env": "{}",
        "stack.replicas": "2", "stack.tags": '["a", "b"]'}


def test_flatten_cuts_values_to_mlflows_limit() -> None:
    assert len(flatten({"long": "x" * (MAX_PARAM_CHARS + 10)})["long"]) == MAX_PARAM_CHARS


def test_scalar_metrics_keep_numbers_and_name_nested_counts() -> None:
    summary = {"throughput_qps": 10.5, "requests": 300, "latency_p99_s": math.nan,
               "ttft_p99_s": None, "stream": True, "errors": {"timeout": 2},
               "replica_share": {"replica-0": 0.5, "replica-1": 0.5}, "name": "diy"}
    assert scalar_metrics(summary, "diy.") == {
        "diy.throughput_qps": 10.5, "diy.requests": 300.0, "diy.errors.timeout": 2.0,
        "diy.replica_share.replica-0": 0.5, "diy.replica_share.replica-1": 0.5}


def quality(stacks: list[str], passed: list[bool]) -> QualityResult:
    return QualityResult.model_construct(
        config=QualitySettings.model_construct(stacks=stacks),
        comparisons=[Agreement.model_construct(passed=ok) for ok in passed])


def test_a_quality_check_cut_short_is_never_logged_as_a_pass() -> None:
    assert quality_verdict(quality(["diy", "optimized", "other"], [True])) == "incomplete"
    assert quality_verdict(quality(["diy", "optimized"], [])) == "incomplete"
    assert quality_verdict(quality(["diy", "optimized"], [True])) == "pass"
    assert quality_verdict(quality(["diy", "optimized", "other"], [True, False])) == "fail"
