"""The balancer of a stack on a cluster: a Deployment running this project's balancer with the
spec's policy and defences, finding the replicas through their headless Service, and the
Service clients call."""

from __future__ import annotations

from stacks.balancer.command import balancer_options
from stacks.kubernetes.objects import (
    BALANCER_PORT,
    REPLICA_PORT,
    SERVICE_PORT,
    DeployOptions,
    Manifest,
    api_key_env,
    http_probe,
    labels,
    metadata,
    object_name,
)
from stacks.spec import StackSpec

COMPONENT = "balancer"
DISCOVER_INTERVAL_S = 5


def balancer_container(spec: StackSpec, options: DeployOptions) -> Manifest:
    replicas = object_name(spec.name, "replicas")
    args = ["--host", "0.0.0.0", "--port", str(BALANCER_PORT),
            "--discover", f"{replicas}:{REPLICA_PORT}",
            "--discover-interval-s", str(DISCOVER_INTERVAL_S),
            *balancer_options(spec.balancer)]
    container: Manifest = {
        "name": "balancer",
        "image": options.project_image,
        "command": ["python", "-m", "stacks.balancer"],
        "args": args,
        "ports": [{"name": "http", "containerPort": BALANCER_PORT}],
        "resources": {"requests": {"cpu": "1", "memory": "512Mi"}},
        # /health is 503 while no replica serves: out of the Service then, but not restarted.
        "readinessProbe": http_probe("/health", "http", 2, 2),
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10,
                          "failureThreshold": 3},
    }
    if spec.balancer.api_key_env:
        container["env"] = [api_key_env(spec)]
    return container


def balancer_deployment(spec: StackSpec, options: DeployOptions) -> Manifest:
    pod_labels = labels(spec.name, COMPONENT)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(spec.name, COMPONENT, object_name(spec.name, "balancer"),
                                 options),
            "spec": {"replicas": options.balancer_replicas,
                     "selector": {"matchLabels": pod_labels},
                     "template": {"metadata": {"labels": pod_labels},
                                  "spec": {"containers": [balancer_container(spec, options)]}}}}


def balancer_service(spec: StackSpec, options: DeployOptions) -> Manifest:
    """The stack's address in the cluster: http://<stack>/v1/..."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": metadata(spec.name, COMPONENT, object_name(spec.name), options),
            "spec": {"selector": labels(spec.name, COMPONENT),
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}]}}
