"""Kubernetes manifests from the stack specs: strictly valid against the API's schemas (offline,
`kubernetes-validate`), faithful to the spec when a field changes, and written without losing
anything that was not generated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from harness.cli import main
from stacks.errors import SpecError
from stacks.kubernetes.loadgen import LoadOptions
from stacks.kubernetes.manifests import stack_manifests, write_manifests
from stacks.kubernetes.objects import DeployOptions, object_name
from stacks.spec import PROJECT_ROOT, StackSpec, load_local_stack_spec

# The Kubernetes version the manifests are checked against: a recent one the validator bundles.
KUBERNETES_VERSION = "1.33.0"
SCHEDULE = PROJECT_ROOT / "workloads" / "schedules" / "writing_assistant.jsonl"
OPTIONS = DeployOptions()


def validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def changed(spec: StackSpec, **fields: Any) -> StackSpec:
    return StackSpec.model_validate({**spec.model_dump(), **fields})


@pytest.mark.parametrize("stack", ["diy", "optimized"])
def test_both_stacks_pass_strict_validation(stack: str) -> None:
    spec = load_local_stack_spec(stack)
    objects = stack_manifests(spec, OPTIONS, LoadOptions(schedule=SCHEDULE, workers=2))
    for manifest in objects:
        validate(manifest)
    kinds = [o["kind"] for o in objects]
    assert kinds.count("Deployment") == 2
    assert kinds.count("Job") == 2
    assert "PodDisruptionBudget" in kinds


def test_a_planted_mistake_fails_validation() -> None:
    """The check can fail: an unknown field (strict) and a wrong type are both caught."""
    deployment = by_kind(stack_manifests(load_local_stack_spec("diy"), OPTIONS), "Deployment")[0]
    deployment["spec"]["replicaCount"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    del deployment["spec"]["replicaCount"]
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


def test_diy_is_a_fixed_eager_fleet_behind_round_robin() -> None:
    objects = stack_manifests(load_local_stack_spec("diy"), OPTIONS)
    replicas, balancer = by_kind(objects, "Deployment")
    assert replicas["spec"]["replicas"] == 2
    assert not by_kind(objects, "HorizontalPodAutoscaler")
    assert not by_kind(objects, "RuntimeClass")
    pod = replicas["spec"]["template"]["spec"]
    assert "runtimeClassName" not in pod
    engine = pod["containers"][0]
    assert engine["args"][:2] == ["--model", "/models/tiny"]
    assert "--api-server-count" not in engine["args"]
    assert engine["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    args = balancer["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--policy") + 1] == "round_robin"
    assert args[args.index("--discover") + 1] == "diy-replicas:8000"
    headless = by_kind(objects, "Service")[0]
    assert headless["metadata"]["name"] == "diy-replicas"
    assert headless["spec"]["clusterIP"] == "None"


def test_optimized_scales_on_concurrency_with_asymmetric_windows_and_a_lazy_image() -> None:
    spec = load_local_stack_spec("optimized")
    assert spec.autoscaling is not None
    objects = stack_manifests(spec, OPTIONS)
    replicas = by_kind(objects, "Deployment")[0]
    assert "replicas" not in replicas["spec"]  # the HPA owns the size
    pod = replicas["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == by_kind(objects, "RuntimeClass")[0]["metadata"]["name"]
    engine = pod["containers"][0]
    assert engine["image"] == OPTIONS.engine_image + "-nydus"
    assert engine["args"][:2] == ["--model", "/models/tiny-fp8-channel"]  # GPU pods: FP8
    assert engine["args"][engine["args"].index("--api-server-count") + 1] == "2"
    hpa = by_kind(objects, "HorizontalPodAutoscaler")[0]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 2)
    target = hpa["metrics"][0]["pods"]["target"]["averageValue"]
    assert float(target) == spec.autoscaling.target_concurrency
    up, down = hpa["behavior"]["scaleUp"], hpa["behavior"]["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 0
    assert down["stabilizationWindowSeconds"] == spec.autoscaling.down_window_s
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 30}]


def test_a_changed_spec_field_shows_in_the_manifests() -> None:
    spec = load_local_stack_spec("optimized")
    assert spec.autoscaling is not None
    engine = {**spec.engine.model_dump(), "api_server_count": 4,
              "args": {"dtype": "float16", "enforce-eager": True}}
    scaling = {**spec.autoscaling.model_dump(), "down_window_s": 300, "max_replicas": 8,
               "target_concurrency": 12.25}
    edited = changed(spec, engine=engine, autoscaling=scaling,
                     balancer={**spec.balancer.model_dump(), "policy": "least_inflight"})
    objects = stack_manifests(edited, OPTIONS)
    for manifest in objects:
        validate(manifest)
    args = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--api-server-count") + 1] == "4"
    assert args[args.index("--dtype") + 1] == "float16"
    assert "--enforce-eager" in args
    hpa = by_kind(objects, "HorizontalPodAutoscaler")[0]["spec"]
    assert hpa["maxReplicas"] == 8
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["metrics"][0]["pods"]["target"]["averageValue"] == "12250m"
    balancer = by_kind(objects, "Deployment")[1]["spec"]["template"]["spec"]["containers"][0]
    assert balancer["args"][balancer["args"].index("--policy") + 1] == "least_inflight"

    symmetric = changed(spec, autoscaling={**scaling, "policy": "symmetric", "window_s": 20})
    behavior = by_kind(stack_manifests(symmetric, OPTIONS), "HorizontalPodAutoscaler")[0]
    assert behavior["spec"]["behavior"] == {"scaleUp": {"stabilizationWindowSeconds": 20},
                                            "scaleDown": {"stabilizationWindowSeconds": 20}}
    static = changed(spec, autoscaling={**scaling, "policy": "static"})
    static_objects = stack_manifests(static, OPTIONS)
    assert not by_kind(static_objects, "HorizontalPodAutoscaler")
    assert by_kind(static_objects, "Deployment")[0]["spec"]["replicas"] == spec.replicas


def test_names_a_cluster_cannot_take_are_refused() -> None:
    assert object_name("my_stack.v2", "replica") == "my-stack-v2-replica"
    with pytest.raises(SpecError, match="not a Kubernetes name"):
        object_name("2fast")


def test_a_schedule_too_large_for_a_configmap_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "schedule.jsonl"
    big.write_text("x" * (1024 * 1024 + 1))
    spec = load_local_stack_spec("diy")
    with pytest.raises(SpecError, match="--schedule-claim"):
        stack_manifests(spec, OPTIONS, LoadOptions(schedule=big))
    on_claim = stack_manifests(spec, OPTIONS, LoadOptions(schedule=big, schedule_claim="sched"))
    assert not by_kind(on_claim, "ConfigMap")
    master = by_kind(on_claim, "Job")[0]["spec"]["template"]["spec"]
    assert master["volumes"][0]["persistentVolumeClaim"]["claimName"] == "sched"


def test_writing_replaces_only_generated_files(tmp_path: Path) -> None:
    spec = load_local_stack_spec("optimized")
    source = PROJECT_ROOT / "stacks" / "optimized" / "stack.yaml"
    out = tmp_path / "k"
    first = write_manifests(spec, source, stack_manifests(spec, OPTIONS), out)
    assert (out / "prometheus-adapter-values.yaml") in first
    again = write_manifests(spec, source, stack_manifests(spec, OPTIONS), out)
    assert sorted(first) == sorted(again)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SpecError, match="not generated here"):
        write_manifests(spec, source, stack_manifests(spec, OPTIONS), out)
    assert (out / "notes.txt").read_text() == "mine"


def test_the_command_writes_valid_manifests(tmp_path: Path) -> None:
    out = tmp_path / "k"
    assert main(["deploy", "k8s", "optimized", "--out", str(out), "--namespace", "serving",
                 "--schedule", str(SCHEDULE), "--workers", "3"]) == 0
    files = sorted(out.glob("*.yaml"))
    manifests = [yaml.safe_load(p.read_text()) for p in files
                 if p.name != "prometheus-adapter-values.yaml"]
    for manifest in manifests:
        validate(manifest)
    assert {m["metadata"].get("namespace") for m in manifests} == {"serving", None}
    assert [m for m in manifests if m["kind"] == "Job"][1]["spec"]["parallelism"] == 3
    adapter = yaml.safe_load((out / "prometheus-adapter-values.yaml").read_text())
    query = adapter["rules"]["custom"][0]["metricsQuery"]
    assert "vllm:num_requests_waiting" in query
    assert "[6s]" in query
    assert main(["deploy", "k8s", "nonesuch", "--out", str(tmp_path / "x")]) == 2


def test_bad_options_get_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "k8s", "diy", "--out", str(tmp_path / "k"), "--schedule",
                 str(SCHEDULE), "--workers", "0"]) == 2
    assert "workers" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()


def test_an_api_key_reaches_the_balancer_and_the_load_generator_from_one_secret() -> None:
    spec = load_local_stack_spec("diy")
    keyed = changed(spec, balancer={**spec.balancer.model_dump(), "api_key_env": "LLM_KEY"})
    objects = stack_manifests(keyed, OPTIONS, LoadOptions(schedule=SCHEDULE))
    for manifest in objects:
        validate(manifest)
    balancer = by_kind(objects, "Deployment")[1]["spec"]["template"]["spec"]["containers"][0]
    master = by_kind(objects, "Job")[0]["spec"]["template"]["spec"]["containers"][0]
    for container in (balancer, master):
        assert {"name": "LLM_KEY", "valueFrom": {"secretKeyRef": {
            "name": "diy-api-key", "key": "key"}}} in container["env"]
    assert master["args"][master["args"].index("--api-key-env") + 1] == "LLM_KEY"
