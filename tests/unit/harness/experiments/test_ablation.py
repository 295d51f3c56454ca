"""Ablation variants of the optimized stack, and each optimization's contribution."""

from __future__ import annotations

import math

import pytest

from harness.errors import HarnessError
from harness.experiments.ablation import (
    ablation_variants,
    contributions,
    scaling_ratios,
    scaling_variants,
)
from stacks.spec import EndpointSpec, load_local_stack_spec


def test_one_variant_per_optimization_each_with_only_that_one_off() -> None:
    diy, optimized = load_local_stack_spec("diy"), load_local_stack_spec("optimized")
    studied, names, variants = ablation_variants([diy, optimized])
    assert studied == "optimized"
    assert names == {"w8a8": "optimized-no-w8a8", "multi_api": "optimized-no-multi-api",
                     "p2c": "optimized-no-p2c"}
    full = optimized.model_dump()
    for variant in variants:
        changed = {key for key, value in variant.model_dump().items() if full[key] != value}
        assert changed == {"name", "engine" if "p2c" not in variant.name else "balancer"}
    by_name = {variant.name: variant for variant in variants}
    assert by_name["optimized-no-w8a8"].engine.quantization is None
    assert by_name["optimized-no-multi-api"].engine.api_server_count == 1
    no_p2c = by_name["optimized-no-p2c"].balancer
    assert no_p2c.policy == "round_robin"
    assert no_p2c.health_interval_s == optimized.balancer.health_interval_s  # only the policy


def test_with_faults_each_defence_of_the_balancer_is_turned_off_alone() -> None:
    optimized = load_local_stack_spec("optimized")
    _, names, variants = ablation_variants([optimized], defences=True)
    defences = {"health", "outlier", "retry", "retry_budget", "per_try_timeout"}
    assert set(names) == {"w8a8", "multi_api", "p2c"} | defences  # admission is off already
    full = optimized.balancer.model_dump()
    for variant in variants[3:]:
        changed = {key for key, value in variant.balancer.model_dump().items()
                   if full[key] != value}
        assert len(changed) == 1
        assert getattr(variant.balancer, changed.pop()) in (None, 0.0, False)
    assert names["per_try_timeout"] == "optimized-no-per-try-timeout"


def test_a_stack_without_optimizations_or_only_endpoints_is_refused() -> None:
    with pytest.raises(HarnessError, match="none of the optimizations"):
        ablation_variants([load_local_stack_spec("diy")])
    with pytest.raises(HarnessError, match="launches"):
        ablation_variants([EndpointSpec(name="gpu", endpoint="http://gpu:8000")])


def test_contribution_is_the_full_stack_over_the_variant() -> None:
    stacks = {"opt": {"throughput_qps": 130.0, "goodput_qps": 120.0, "latency_p50_s": 0.2,
                      "latency_p99_s": 0.6, "success_rate": 1.0},
              "opt-no-w8a8": {"throughput_qps": 100.0, "goodput_qps": 80.0,
                              "latency_p50_s": 0.25, "latency_p99_s": 0.9,
                              "success_rate": 1.0}}
    result = contributions(stacks, "opt", {"w8a8": "opt-no-w8a8", "p2c": "missing"})
    assert set(result) == {"w8a8"}  # a variant not measured yet has no row
    row = result["w8a8"]
    assert row["variant"] == "opt-no-w8a8"
    assert row["throughput_qps"] == pytest.approx(1.3)
    assert row["goodput_qps"] == pytest.approx(1.5)
    assert row["latency_p99_s"] == pytest.approx(2 / 3)


def test_scaling_variants_run_the_studied_stack_under_each_other_policy() -> None:
    diy, optimized = load_local_stack_spec("diy"), load_local_stack_spec("optimized")
    assert optimized.autoscaling is not None
    studied, policy, names, variants = scaling_variants([diy, optimized])
    assert (studied, policy) == ("optimized", "asymmetric")
    assert names == {"static": "optimized-static", "symmetric": "optimized-symmetric"}
    static, symmetric = variants
    assert static.autoscaling is not None
    assert symmetric.autoscaling is not None
    # Static provisioning for the peak: the most replicas the studied stack may scale to.
    assert (static.autoscaling.policy, static.replicas, static.initial_replicas) == (
        "static", 2, 2)
    assert (symmetric.autoscaling.policy, symmetric.initial_replicas) == ("symmetric", 1)
    assert symmetric.autoscaling.window_s == optimized.autoscaling.window_s
    with pytest.raises(HarnessError, match="needs a stack this machine launches with an "
                                           "`autoscaling:` section"):
        scaling_variants([diy])


def test_scaling_ratios_divide_the_studied_stack_by_each_variant() -> None:
    scaling = {"a": {"slo_violating_s": 10, "replica_seconds": 600, "latency_p99_peak_s": 2.0},
               "a-symmetric": {"slo_violating_s": 40, "replica_seconds": 500,
                               "latency_p99_peak_s": 4.0},
               "a-static": {"slo_violating_s": 0, "replica_seconds": 800,
                            "latency_p99_peak_s": 0.5}}
    ratios = scaling_ratios(scaling, "a", {"symmetric": "a-symmetric", "static": "a-static"})
    assert ratios["symmetric"] == {"slo_violating_s": 0.25, "replica_seconds": 1.2,
                                   "latency_p99_peak_s": 0.5}
    assert ratios["static"]["replica_seconds"] == 0.75
    assert math.isnan(ratios["static"]["slo_violating_s"])  # nothing to divide by
