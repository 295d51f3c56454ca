"""The traffic side on a cluster: Locust's master and workers replaying one schedule file, as
`harness run --workers N` does here, against a stack's Service.

Both are Jobs: a replay ends. Worker k of N replays requests k, k+N... and sends its records
to the master, which alone writes the records file, on a volume claim so it outlives the pod.
The schedule travels in a ConfigMap (at most 1 MiB, Kubernetes' limit) or, larger, on a
volume claim that holds it as `schedule.jsonl`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from stacks.errors import SpecError
from stacks.kubernetes.objects import (
    SERVICE_PORT,
    DeployOptions,
    Manifest,
    api_key_env,
    labels,
    metadata,
    object_name,
)
from stacks.spec import StackSpec

CONFIGMAP_LIMIT_BYTES = 1024 * 1024
MASTER_PORT = 5557
LOCUSTFILE = "/app/workloads/writing_assistant.py"  # where the project image holds it
SCHEDULE = "/schedule/schedule.jsonl"
RECORDS = "/records/records.jsonl"


class LoadOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: Path = Field(description="a schedule file (`harness schedule`)")
    workers: int = Field(default=4, ge=1)
    schedule_claim: str | None = Field(default=None, description="a volume claim holding "
                                       "schedule.jsonl, for a schedule over 1 MiB")
    records_claim: str = "loadgen-records"


def schedule_configmap(stack: str, load: LoadOptions, options: DeployOptions) -> Manifest:
    try:
        text = load.schedule.read_text()
    except OSError as exc:
        raise SpecError(f"--schedule {load.schedule}: {exc.strerror}; write one with "
                        "`harness schedule WORKLOAD --out FILE`") from None
    if len(text.encode()) > CONFIGMAP_LIMIT_BYTES - 4096:
        raise SpecError(f"--schedule {load.schedule}: {len(text.encode()):,} bytes is over "
                        "a ConfigMap's 1 MiB; put it on a volume as schedule.jsonl and pass "
                        "--schedule-claim NAME")
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(stack, "loadgen", object_name(stack, "schedule"), options),
            "data": {"schedule.jsonl": text}}


def _pod(spec: StackSpec, component: str, args: list[str], load: LoadOptions,
         options: DeployOptions) -> Manifest:
    stack = spec.name
    schedule: Manifest = (
        {"persistentVolumeClaim": {"claimName": load.schedule_claim, "readOnly": True}}
        if load.schedule_claim else {"configMap": {"name": object_name(stack, "schedule")}})
    mounts = [{"name": "schedule", "mountPath": "/schedule", "readOnly": True}]
    volumes = [{"name": "schedule", **schedule}]
    if component == "loadgen-master":
        mounts.append({"name": "records", "mountPath": "/records"})
        volumes.append({"name": "records",
                        "persistentVolumeClaim": {"claimName": load.records_claim}})
    # Senders wait in microseconds with this loop (workloads/replay.py).
    env: list[Manifest] = [{"name": "GEVENT_BACKEND", "value": "select"}]
    if spec.balancer.api_key_env:
        env.append(api_key_env(spec))
    return {"metadata": {"labels": labels(stack, component)},
            "spec": {"restartPolicy": "Never",
                     "containers": [{
                         "name": "locust", "image": options.project_image,
                         "command": ["python", "-m", "locust"],
                         "args": ["-f", LOCUSTFILE, "--schedule", SCHEDULE,
                                  "--loglevel", "WARNING", *args],
                         "env": env,
                         "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                         "volumeMounts": mounts}],
                     "volumes": volumes}}


def _job(stack: str, component: str, pod: Manifest, count: int,
         options: DeployOptions) -> Manifest:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": metadata(stack, component, object_name(stack, component), options),
            "spec": {"parallelism": count, "completions": count, "backoffLimit": 0,
                     "template": pod}}


def loadgen_manifests(spec: StackSpec, load: LoadOptions,
                      options: DeployOptions) -> list[Manifest]:
    stack = spec.name
    master = object_name(stack, "loadgen-master")
    master_args = ["--host", f"http://{object_name(stack)}:{SERVICE_PORT}", "--headless",
                   "--records", RECORDS, "--exit-code-on-error", "0", "--only-summary",
                   "--master", "--master-bind-port", str(MASTER_PORT),
                   "--expect-workers", str(load.workers)]
    if spec.engine.served_model_name:
        master_args += ["--model", spec.engine.served_model_name]
    key = spec.balancer.api_key_env
    if key:  # the key the stack's balancer asks for, from the same Secret
        master_args += ["--api-key-env", key]
    worker_args = ["--worker", "--master-host", master, "--master-port", str(MASTER_PORT)]
    objects = [] if load.schedule_claim else [schedule_configmap(stack, load, options)]
    return [*objects,
            {"apiVersion": "v1", "kind": "Service",
             "metadata": metadata(stack, "loadgen-master", master, options),
             "spec": {"selector": labels(stack, "loadgen-master"),
                      "ports": [{"name": "locust", "port": MASTER_PORT,
                                 "targetPort": MASTER_PORT}]}},
            _job(stack, "loadgen-master", _pod(spec, "loadgen-master", master_args, load,
                                                options), 1, options),
            _job(stack, "loadgen-worker", _pod(spec, "loadgen-worker", worker_args, load,
                                                options), load.workers, options)]
