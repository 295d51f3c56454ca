"""`harness run --ablate`: what each optimization of a stack contributes.

For the stack under study (the last launched stack of `--stacks`, normally `optimized`), one
variant per optimization it has, with only that one turned off:

- `w8a8`: the bf16 source model instead of the W8A8 copy (`<stack>-no-w8a8`);
- `multi_api`: one API server process per engine (`<stack>-no-multi-api`);
- `p2c`: round-robin instead of its load-aware policy (`<stack>-no-p2c`).

An optimization's contribution is the full stack's figure divided by its variant's: a
throughput contribution of 1.3× means turning it off costs 30 % of throughput on this run.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.measure.metrics import ratios
from stacks.spec import EndpointSpec, StackSpec

OPTIMIZATIONS = ("w8a8", "multi_api", "p2c")
ABLATION_LABELS = {"w8a8": "W8A8 per-channel weights", "multi_api": "several API servers",
                   "p2c": "load-aware P2C balancer"}
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
    else:
        return None
    name = f"{spec.name}-no-{optimization.replace('_', '-')}"
    return spec.model_copy(update={**changes, "name": name})


def ablation_variants(stacks: list[StackSpec | EndpointSpec]) -> tuple[str, dict[str, str],
                                                                       list[StackSpec]]:
    """(studied stack, optimization -> variant name, variant specs)."""
    launched = [spec for spec in stacks if isinstance(spec, StackSpec)]
    if not launched:
        raise HarnessError("--ablate needs a stack this machine launches (not only endpoints)")
    studied = launched[-1]
    names: dict[str, str] = {}
    variants: list[StackSpec] = []
    for optimization in OPTIMIZATIONS:
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
