"""Requests in progress, summed once from Prometheus text."""

from __future__ import annotations

from stacks.load import BALANCER_LOAD_METRICS, ENGINE_LOAD_METRICS, requests_in_progress

VLLM = """# HELP vllm:num_requests_running Number of requests running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 3.0
vllm:num_requests_running{model_name="b"} 1.0
# HELP vllm:num_requests_waiting Number of requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="a"} 2.0
# HELP vllm:gpu_cache_usage_perc Cache use.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc 0.5
"""


def test_every_series_of_the_named_metrics_is_summed() -> None:
    assert requests_in_progress(VLLM, ENGINE_LOAD_METRICS) == 6


def test_a_server_that_reports_none_of_them_says_so() -> None:
    assert requests_in_progress(VLLM, BALANCER_LOAD_METRICS) is None
    assert requests_in_progress("", ENGINE_LOAD_METRICS) is None
