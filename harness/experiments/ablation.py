"""`harness run --ablate`: what each optimization of a stack contributes.

For the stack under study (the last launched stack of `--stacks`, normally `optimized`), one
variant per optimization it has, with only that one turned off:

- `w8a8`: the bf16 source model instead of the W8A8 copy (`<stack>-no-w8a8`);
- `multi_api`: one API server process per engine (`<stack>-no-multi-api`);
- `p2c`: round-robin instead of its load-aware policy (`<stack>-no-p2c`);
- the balancer's defences, each on its own: `health` (no health checks), `outlier` (no outlier
  detection), `retry` (no retries), `retry_budget` (retries unbounded), `per_try_timeout` (an
  attempt may take the whole upstream timeout), `admission` (no admission control); only in a
  run with a scenario (`--scenario`): they act on faults, and cost nothing to measure without.

An optimization's contribution is the full stack's figure divided by its variant's: a
throughput contribution of 1.3× means turning it off costs 30 % of throughput on this run.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.measure.metrics import ratio_of, ratios
from stacks.spec import EndpointSpec, StackSpec

OPTIMIZATIONS = ("w8a8", "multi_api", "p2c")
DEFENCES = ("health", "outlier", "retry", "retry_budget", "per_try_timeout", "admission")
ABLATION_LABELS = {"w8a8": "W8A8 per-channel weights", "multi_api": "several API servers",
                   "p2c": "load-aware P2C balancer", "health": "health checks",
                   "outlier": "outlier ejection", "retry": "retries",
                   "retry_budget": "retry budget", "per_try_timeout": "per-attempt timeout",
                   "admission": "admission control"}
# The balancer setting each defence is, and its value when off.
BALANCER_OFF: dict[str, tuple[str, Any]] = {
    "health": ("health_interval_s", 0.0), "outlier": ("outlier", None),
    "retry": ("retry", False), "retry_budget": ("retry_budget", None),
    "per_try_timeout": ("per_try_timeout_s", 0.0), "admission": ("admission", None)}
SHOWN = ("throughput_qps", "goodput_qps", "latency_p50_s", "latency_p99_s", "success_rate")


def _without(spec: StackSpec, optimization: str) -> StackSpec | None:
    """The spec with one optimization off, or None when it does not have that one."""
    engine, balancer = spec.engine, spec.balancer
    if optimization == "w8a8" and engine.quantization is not None:
        changes: dict[str, Any] = {"engine": engine.model_copy(update={"quantization": None})}
    elif optimization == "multi_api" and engine.api_server_count > 1:
        changes = {"engine": engine.model_copy(update={"api_server_count": 1})}
    elif optimization == "p2c" and balancer.policy != "round_robin":
        changes = {"balancer": balancer.model_copy(update={"policy": "round_robin"})}
    elif optimization in BALANCER_OFF and \
            getattr(balancer, BALANCER_OFF[optimization][0]) not in (None, 0.0, False):
        field, off = BALANCER_OFF[optimization]
        changes = {"balancer": balancer.model_copy(update={field: off})}
    else:
        return None
    name = f"{spec.name}-no-{optimization.replace('_', '-')}"
    return spec.model_copy(update={**changes, "name": name})


def ablation_variants(stacks: list[StackSpec | EndpointSpec], defences: bool = False) -> \
        tuple[str, dict[str, str], list[StackSpec]]:
    """(studied stack, optimization -> variant name, variant specs); with `defences` (a run
    with faults), the balancer's defences too."""
    launched = [spec for spec in stacks if isinstance(spec, StackSpec)]
    if not launched:
        raise HarnessError("--ablate needs a stack this machine launches (not only endpoints)")
    studied = launched[-1]
    names: dict[str, str] = {}
    variants: list[StackSpec] = []
    for optimization in (*OPTIMIZATIONS, *(DEFENCES if defences else ())):
        variant = _without(studied, optimization)
        if variant is not None:
            names[optimization] = variant.name
            variants.append(variant)
    if not variants:
        raise HarnessError(f"--ablate: stack {studied.name} has none of the optimizations to "
                           f"turn off ({', '.join(OPTIMIZATIONS)})")
    return studied.name, names, variants


def contributions(stacks: dict[str, dict[str, Any]], studied: str,
                  variants: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per optimization, the studied stack's figures ÷ those of the variant without it."""
    out: dict[str, dict[str, Any]] = {}
    for optimization, variant in variants.items():
        if studied in stacks and variant in stacks:
            ratio = ratios({variant: stacks[variant], studied: stacks[studied]}, variant)[studied]
            out[optimization] = {"variant": variant,
                                 **{metric: ratio[metric] for metric in SHOWN}}
    return out


# `--ablate-scaling`: the stack's own autoscaling policy against the others, and what is
# compared (the studied stack's figure ÷ the variant's).
SCALING_POLICIES = ("static", "symmetric", "asymmetric")
SCALING_SHOWN = ("slo_violating_s", "replica_seconds", "latency_p99_peak_s")


def scaling_variants(stacks: list[StackSpec | EndpointSpec]) -> \
        tuple[str, str, dict[str, str], list[StackSpec]]:
    """(studied stack, its policy, other policy -> variant name, variant specs). A static
    variant keeps the most replicas the studied stack may scale to: static provisioning for
    the peak."""
    launched = [spec for spec in stacks if isinstance(spec, StackSpec)]
    studied = launched[-1] if launched else None
    if studied is None or studied.autoscaling is None:
        raise HarnessError("--ablate-scaling needs a stack this machine launches with an "
                           "`autoscaling:` section (as stacks/optimized/stack.yaml has)")
    scaling = studied.autoscaling
    names: dict[str, str] = {}
    variants: list[StackSpec] = []
    for policy in SCALING_POLICIES:
        if policy == scaling.policy:
            continue
        replicas = scaling.max_replicas if policy == "static" else studied.replicas
        variant = studied.model_copy(update={
            "name": f"{studied.name}-{policy}", "replicas": replicas,
            "autoscaling": scaling.model_copy(update={"policy": policy})})
        names[policy] = variant.name
        variants.append(variant)
    return studied.name, scaling.policy, names, variants


def scaling_ratios(scaling: dict[str, dict[str, Any]], studied: str,
                   variants: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per other policy, the studied stack's scaling figures ÷ that variant's."""
    return {policy: {metric: ratio_of(scaling[studied].get(metric), scaling[name].get(metric))
                     for metric in SCALING_SHOWN}
            for policy, name in variants.items() if studied in scaling and name in scaling}
