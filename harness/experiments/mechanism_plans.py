"""The optimizations `harness mechanisms` isolates, each with the regime where it binds, the
figure that shows it, and how its two variants (off, on) are made from the baseline stack and
the stack whose setting is taken (`harness.experiments.mechanisms`). Pure: nothing runs here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError
from harness.report.mechanisms_results import Mechanism
from stacks.launcher import auto_binding
from stacks.spec import StackSpec


@dataclass(frozen=True)
class MechanismPlan:
    """How one optimization is isolated: its regime, its figure, its two variants."""

    name: Mechanism
    label: str
    bottleneck: str
    workload: str  # under workloads/
    metric: str  # a key of `metrics.summarize`
    metric_label: str
    unit: str
    higher_is_better: bool
    replicas: int
    saturated: bool  # offered faster than answered: the replay ends with the window
    scenario: str | None = None
    calibrated: bool = False  # its rate is a fraction of the off variant's saturated rate

    @property
    def per_replica(self) -> bool:
        return self.unit != "s"

    def variants(self, base: StackSpec, source: StackSpec) -> tuple[StackSpec, StackSpec]:
        """(off, on): the baseline shaped for this regime, and the same with the source
        stack's setting of this one optimization."""
        off_changes: dict[str, Any] = {"replicas": self.replicas}
        if self.replicas < base.replicas:
            # A replica keeps the share of the cores it has in the baseline stack (and the
            # stack's `pin`): one replica as it runs there, the balancer and the load
            # generator on the rest.
            cores = sorted(os.sched_getaffinity(0))
            share = auto_binding(0, base.replicas, cores)
            off_changes["cpu"] = base.cpu.model_copy(update={"binding": [share]})
        suffix = f"-{self.replicas}r" if self.replicas != base.replicas else ""
        off = base.model_copy(update={**off_changes, "name": f"{base.name}{suffix}"})
        on_name = f"{off.name}-{self.name.replace('_', '-')}"
        switched = self._switched(off, source)
        if switched is None:
            raise UsageError(f"--source {source.name} does not differ from --baseline "
                             f"{base.name} in {self.label}: pick a source stack that has it")
        return off, off.model_copy(update={**switched, "name": on_name})

    def _switched(self, off: StackSpec, source: StackSpec) -> dict[str, Any] | None:
        engine, balancer = source.engine, source.balancer
        if self.name == "w8a8" and engine.quantization is not None:
            return {"engine": off.engine.model_copy(
                update={"quantization": engine.quantization})}
        if self.name == "multi_api" and engine.api_server_count > off.engine.api_server_count:
            return {"engine": off.engine.model_copy(
                update={"api_server_count": engine.api_server_count})}
        if self.name == "p2c" and balancer.policy != off.balancer.policy:
            return {"balancer": off.balancer.model_copy(update={
                "policy": balancer.policy, "load_interval_s": balancer.load_interval_s})}
        return None


PLANS: dict[str, MechanismPlan] = {plan.name: plan for plan in (
    MechanismPlan("w8a8", "W8A8 per-channel weights", "engine-bound: saturated decode",
                  "saturated_decode", "output_tokens_per_s", "output tokens/s per replica",
                  "tokens/s", True, replicas=1, saturated=True),
    MechanismPlan("multi_api", "several API servers", "front-end-bound: one-token answers "
                  "at high QPS", "short_requests", "throughput_qps", "completions/s per replica",
                  "QPS", True, replicas=1, saturated=True),
    MechanismPlan("p2c", "power-of-two-choices balancer", "a hotspot: one replica at half "
                  "speed under load", "writing_assistant", "latency_p99_s", "latency P99", "s",
                  False, replicas=2, saturated=False, scenario="replica_slow",
                  calibrated=True),
)}
# The P2C run's length: the replica_slow scenario slows replica 0 from 10 s to 40 s.
P2C_DURATION_S = 45.0
CALIBRATION_QPS = 300.0  # offered to saturate the round-robin stack (about 130 QPS pinned)
CALIBRATION_IN_FLIGHT = 64
CALIBRATION_DURATION_S = 20.0
