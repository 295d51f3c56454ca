"""The replicas of a stack on a cluster: a Deployment of vLLM servers, the headless Service
the balancer finds them by, a PodDisruptionBudget, and, for a lazy image, its RuntimeClass."""

from __future__ import annotations

import math
from pathlib import Path

from stacks.balancer.membership import PROBE_FAILURES_TO_EJECT
from stacks.kubernetes.objects import (
    MODELS_MOUNT,
    REPLICA_PORT,
    DeployOptions,
    Manifest,
    http_probe,
    labels,
    metadata,
    object_name,
)
from stacks.launcher import VLLM_SERVER_MODULE, engine_options
from stacks.spec import StackSpec

COMPONENT = "replica"
STARTUP_PERIOD_S = 5
# Nydus's snapshotter fetches an image's chunks on first read, as the lazy image here does.
# The node's containerd maps this handler to it (docs/deploy.md).
LAZY_RUNTIME_CLASS, LAZY_HANDLER = "nydus", "runc-nydus"
# A pod leaving keeps serving while the balancer, which re-resolves the Service every few
# seconds, still sends to it; the engine is stopped only after that.
PRE_STOP_S = 10


def served_model_dir(spec: StackSpec) -> str:
    """Where a replica finds its model on the models volume: the source's directory name, or
    for a quantized engine that of its copy. Pods have GPUs, so `auto` is FP8 there."""
    source = Path(spec.engine.model).name
    quantization = spec.engine.quantization
    if quantization is None:
        return f"{MODELS_MOUNT}/{source}"
    scheme = "fp8" if quantization.scheme == "auto" else quantization.scheme
    return f"{MODELS_MOUNT}/{source}-{scheme}-{quantization.granularity}"


def engine_image(spec: StackSpec, options: DeployOptions) -> str:
    """A lazy image is the engine's image converted (`nydusify convert`), tagged `-nydus`."""
    return options.engine_image + ("-nydus" if spec.image.mode == "lazy" else "")


def engine_container(spec: StackSpec, options: DeployOptions) -> Manifest:
    engine = spec.engine
    args = ["--model", served_model_dir(spec), "--host", "0.0.0.0", "--port", str(REPLICA_PORT),
            "--served-model-name", engine.served_model_name or Path(engine.model).name,
            *engine_options(engine)]
    # As often as the balancer probes, where it does (a second at least); else every 5 s.
    interval = spec.balancer.health_interval_s
    health_period = max(1, round(interval)) if interval > 0 else 5
    resources: Manifest = {"requests": {"cpu": str(engine.api_server_count + 2),
                                        "memory": options.memory_per_replica}}
    if options.gpus_per_replica:
        resources["limits"] = {"nvidia.com/gpu": str(options.gpus_per_replica)}
    return {
        "name": "vllm",
        "image": engine_image(spec, options),
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-m", VLLM_SERVER_MODULE],
        "args": args,
        "env": [{"name": key, "value": value} for key, value in sorted(engine.env.items())],
        "ports": [{"name": "http", "containerPort": REPLICA_PORT}],
        "resources": resources,
        "startupProbe": http_probe("/health", "http", STARTUP_PERIOD_S,
                                   math.ceil(spec.startup_timeout_s / STARTUP_PERIOD_S)),
        "readinessProbe": http_probe("/health", "http", health_period,
                                     PROBE_FAILURES_TO_EJECT),
        "livenessProbe": http_probe("/health", "http", 10, 3, timeout_s=5),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_S)]}}},
        "volumeMounts": [{"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True},
                         {"name": "dshm", "mountPath": "/dev/shm"}],
    }


def replica_deployment(spec: StackSpec, options: DeployOptions, scaled: bool) -> Manifest:
    """With an autoscaler (`scaled`) the HPA owns the size: the Deployment leaves it out, so
    applying the manifests again does not reset the fleet."""
    pod_labels = labels(spec.name, COMPONENT)
    pod: Manifest = {
        "terminationGracePeriodSeconds": PRE_STOP_S + 30,
        "containers": [engine_container(spec, options)],
        "volumes": [
            {"name": "models", "persistentVolumeClaim": {"claimName": options.models_claim,
                                                         "readOnly": True}},
            # vLLM's API servers and engine share tensors through /dev/shm: more than the
            # container runtime's 64 MiB default.
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}],
    }
    if spec.image.mode == "lazy":
        pod["runtimeClassName"] = LAZY_RUNTIME_CLASS
    deployment_spec: Manifest = {
        "selector": {"matchLabels": pod_labels},
        # A new pod serves before an old one goes: capacity never dips during a rollout.
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {"metadata": {"labels": pod_labels, "annotations": {
            # vLLM's /metrics (num_requests_running, _waiting): what the HPA scales on.
            "prometheus.io/scrape": "true", "prometheus.io/port": str(REPLICA_PORT),
            "prometheus.io/path": "/metrics"}}, "spec": pod},
    }
    if not scaled:
        deployment_spec = {"replicas": spec.replicas, **deployment_spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(spec.name, COMPONENT, object_name(spec.name, "replica"),
                                 options),
            "spec": deployment_spec}


def replica_service(spec: StackSpec, options: DeployOptions) -> Manifest:
    """Headless: its name resolves to every ready replica's address (`--discover`)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": metadata(spec.name, COMPONENT, object_name(spec.name, "replicas"),
                                 options),
            "spec": {"clusterIP": "None", "selector": labels(spec.name, COMPONENT),
                     "ports": [{"name": "http", "port": REPLICA_PORT,
                                "targetPort": "http"}]}}


def disruption_budget(spec: StackSpec, options: DeployOptions) -> Manifest:
    """Voluntary evictions (node drains, upgrades) take one replica at a time."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": metadata(spec.name, COMPONENT, object_name(spec.name, "replica"),
                                 options),
            "spec": {"maxUnavailable": 1,
                     "selector": {"matchLabels": labels(spec.name, COMPONENT)}}}


def lazy_runtime_class() -> Manifest:
    """Cluster-scoped: one for every stack that starts from a lazy image."""
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": LAZY_RUNTIME_CLASS,
                         "labels": {"app.kubernetes.io/part-of": "serving-harness"}},
            "handler": LAZY_HANDLER}
