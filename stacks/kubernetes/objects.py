"""What every generated object shares: names a cluster accepts, labels, and the options a
cluster needs that a stack spec does not say (images, GPUs, where the model lives)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stacks.errors import SpecError
from stacks.spec import StackSpec

Manifest = dict[str, Any]
REPLICA_PORT = 8000
BALANCER_PORT = 8080
SERVICE_PORT = 80
MODELS_MOUNT = "/models"
PART_OF = "serving-harness"


class DeployOptions(BaseModel):
    """Choices of the cluster, not of the stack. Defaults are named in docs/deploy.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine_image: str = Field(default="vllm/vllm-openai:v0.32.0", description="the replica's "
                              "container image: vLLM's own, at the version measured here")
    project_image: str = Field(default="serving-harness:0.1.0", description="this project "
                               "installed (the balancer and the load generator run from it)")
    namespace: str | None = None
    gpus_per_replica: int = Field(default=1, ge=0)
    memory_per_replica: str = "32Gi"
    models_claim: str = Field(default="models", description="a ReadOnlyMany volume claim "
                              "holding the served model directories")
    balancer_replicas: int = Field(default=1, ge=1)


def object_name(stack: str, suffix: str = "") -> str:
    """A stack's name as a DNS-1035 label (what a Service needs): lower case, `-` for `_` and
    `.`. A SpecError where no such name can be made."""
    name = re.sub(r"[_.]", "-", stack.lower()) + (f"-{suffix}" if suffix else "")
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
        raise SpecError(f"stack {stack!r}: {name!r} is not a Kubernetes name (a letter first, "
                        "then letters, digits or '-', at most 63); rename the stack")
    return name


def labels(stack: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": object_name(stack),
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": PART_OF}


def metadata(stack: str, component: str, name: str, options: DeployOptions) -> Manifest:
    meta: Manifest = {"name": name, "labels": labels(stack, component)}
    if options.namespace:
        meta["namespace"] = options.namespace
    return meta


def http_probe(path: str, port: str, period_s: int, failures: int,
               timeout_s: int = 1) -> Manifest:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period_s,
            "failureThreshold": failures, "timeoutSeconds": timeout_s}


def api_key_env(spec: StackSpec) -> Manifest:
    """The stack's API key, as its balancer and its load generator read it: from the Secret
    `<stack>-api-key`, key `key`, which the cluster's owner creates (docs/deploy.md)."""
    return {"name": spec.balancer.api_key_env,
            "valueFrom": {"secretKeyRef": {"name": object_name(spec.name, "api-key"),
                                           "key": "key"}}}


def quantity(value: float) -> str:
    """A Kubernetes quantity: whole numbers as they are, others in thousandths ("12250m")."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"
