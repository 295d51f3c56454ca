"""A stack's autoscaler on a cluster: a HorizontalPodAutoscaler whose `behavior` carries the
policy's windows, scaling the replica Deployment on requests in flight per pod.

The metric reaches the HPA through the Prometheus Adapter (prometheus-community's chart),
not KEDA: the HPA stays a core object with `behavior` written out, and the adapter is one rule
(`adapter_values`). It is vLLM's own running + waiting requests, averaged over the policy's
metric window: what the balancer's in-flight count measures here.
"""

from __future__ import annotations

from stacks.autoscaler.config import AutoscalingSpec
from stacks.kubernetes.objects import DeployOptions, Manifest, metadata, object_name, quantity
from stacks.spec import StackSpec

METRIC = "vllm_requests_in_flight"
HPA_TOLERANCE = 0.1  # the controller's --horizontal-pod-autoscaler-tolerance default
HPA_PERIOD_S = 15  # the controller's sync period: a scale-up policy's natural period
MAX_PERIOD_S = 1800  # the API's bound on a scaling policy's periodSeconds


def down_period(scaling: AutoscalingSpec) -> int:
    return min(MAX_PERIOD_S, max(1, round(scaling.down_period_s)))


def behavior(scaling: AutoscalingSpec) -> Manifest:
    """The policy's windows in HPA terms. Asymmetric: up after `up_window_s` by up to
    `max_up_step` pods a period; down one pod per `down_period_s`, only after
    `down_window_s`. Symmetric: the same window both ways, the HPA's default steps."""
    if scaling.policy == "symmetric":
        window = round(scaling.window_s)
        return {"scaleUp": {"stabilizationWindowSeconds": window},
                "scaleDown": {"stabilizationWindowSeconds": window}}
    return {
        "scaleUp": {"stabilizationWindowSeconds": round(scaling.up_window_s),
                    "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": scaling.max_up_step,
                                  "periodSeconds": HPA_PERIOD_S}]},
        "scaleDown": {"stabilizationWindowSeconds": round(scaling.down_window_s),
                      "selectPolicy": "Min",
                      "policies": [{"type": "Pods", "value": 1,
                                    "periodSeconds": down_period(scaling)}]},
    }


def autoscaler(spec: StackSpec, scaling: AutoscalingSpec, options: DeployOptions) -> Manifest:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(spec.name, "replica", object_name(spec.name, "replica"),
                                 options),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "name": object_name(spec.name, "replica")},
                "minReplicas": scaling.min_replicas,
                "maxReplicas": scaling.max_replicas,
                "metrics": [{"type": "Pods", "pods": {
                    "metric": {"name": METRIC},
                    "target": {"type": "AverageValue",
                               "averageValue": quantity(scaling.target_concurrency)}}}],
                "behavior": behavior(scaling)}}


def adapter_values(scaling: AutoscalingSpec) -> Manifest:
    """Helm values for prometheus-community/prometheus-adapter: the one rule that turns vLLM's
    gauges into the HPA's per-pod metric, averaged over the policy's metric window."""
    window = f"{max(1, round(scaling.metric_window_s))}s"

    def averaged(gauge: str) -> str:
        return (f"sum by (<<.GroupBy>>) (avg_over_time(vllm:{gauge}{{<<.LabelMatchers>>}}"
                f"[{window}]))")

    return {"rules": {"default": False, "custom": [{
        "seriesQuery": 'vllm:num_requests_running{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"},
                                    "pod": {"resource": "pod"}}},
        "name": {"matches": "^vllm:num_requests_running$", "as": METRIC},
        "metricsQuery": f"{averaged('num_requests_running')} + "
                        f"{averaged('num_requests_waiting')}"}]}}


def scaling_notes(scaling: AutoscalingSpec) -> list[str]:
    """What the HPA cannot say per object, for the generated file's header."""
    notes = [f"Prometheus must scrape the replicas at least every "
             f"{max(1, round(scaling.metric_window_s / 3))} s for a "
             f"{scaling.metric_window_s:g} s metric window."]
    if down_period(scaling) != round(scaling.down_period_s):
        notes.append(f"The spec's down_period_s ({scaling.down_period_s:g}) is outside what an "
                     f"HPA allows; {down_period(scaling)} s is used.")
    if scaling.down_tolerance is not None and scaling.down_tolerance != scaling.tolerance:
        notes.append(f"The spec's down_tolerance ({scaling.down_tolerance:g}) has no HPA "
                     "field: the controller's one tolerance applies both ways.")
    if scaling.tolerance != HPA_TOLERANCE:
        notes.append(f"The spec's tolerance is {scaling.tolerance:g}; an HPA's is the "
                     "controller's --horizontal-pod-autoscaler-tolerance "
                     f"({HPA_TOLERANCE:g} by default).")
    return notes
