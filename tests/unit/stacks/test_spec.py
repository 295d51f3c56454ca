from __future__ import annotations

from pathlib import Path

import pytest

from stacks.errors import SpecError
from stacks.spec import EndpointSpec, load_local_stack_spec, load_stack_spec

VALID = """\
name: mine
engine:
  model: models/tiny
  args: {dtype: bfloat16, enforce-eager: true}
replicas: 2
balancer: {policy: p2c}
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return str(path)


def test_shipped_stacks_match_the_design_card() -> None:
    diy, optimized = load_stack_spec("diy"), load_stack_spec("optimized")
    assert (diy.replicas, diy.engine.api_server_count, diy.balancer.policy) == (
        2, 1, "round_robin")
    assert diy.engine.args == {"dtype": "bfloat16"}
    assert (optimized.replicas, optimized.engine.api_server_count, optimized.balancer.policy) == (
        2, 2, "p2c")
    assert optimized.engine.model == diy.engine.model
    # The optimized stack's own policies: W8A8 per channel, load-aware P2C with health.
    assert diy.engine.quantization is None
    assert optimized.engine.quantization is not None
    assert optimized.engine.quantization.granularity == "channel"
    assert (diy.balancer.health_interval_s, diy.balancer.load_interval_s, diy.balancer.retry) \
        == (0, 0, False)
    assert optimized.balancer.health_interval_s > 0
    assert optimized.balancer.load_interval_s > 0
    assert optimized.balancer.retry


def test_a_path_to_a_spec_loads(tmp_path: Path) -> None:
    spec = load_stack_spec(write(tmp_path, VALID))
    assert spec.name == "mine"
    assert spec.engine.args["enforce-eager"] is True


def test_unknown_field_names_file_field_and_what_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("replicas: 2", "replicas: 2\nreplica: 3"))
    with pytest.raises(SpecError) as excinfo:
        load_stack_spec(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: replica: unknown field; allowed: name, description,")
    assert "\n" not in message


@pytest.mark.parametrize(("old", "new", "message"), [
    ("  model: models/tiny", "  model: m\n  gpus: 2",
     r"engine\.gpus: unknown field; allowed: model, "),
    ("policy: p2c", "policy: fastest",
     r"balancer\.policy: .*allowed: round_robin, random, least_inflight, p2c \(got 'fastest'\)"),
    ("replicas: 2", "replicas: 0", r"replicas: Input should be greater than or equal to 1"),
    ("dtype: bfloat16", "port: 9000", r"engine\.args: .*'port' is set by the launcher"),
    ("  model: models/tiny", "  model: models/tiny\n  quantization: {scheme: int4}",
     r"engine\.quantization\.scheme: .*'auto', 'int8' or 'fp8'"),
    ("policy: p2c", "policy: p2c, health_interval_s: -1",
     r"balancer\.health_interval_s: Input should be greater than or equal to 0"),
], ids=["unknown-nested-field", "unknown-policy", "replicas-out-of-range", "launcher-owned-arg",
        "unknown-quantization-scheme", "negative-health-interval"])
def test_bad_field_is_named_with_what_is_allowed(tmp_path: Path, old: str, new: str,
                                                 message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_stack_spec(write(tmp_path, VALID.replace(old, new)))


def test_missing_engine(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"engine: Field required"):
        load_stack_spec(write(tmp_path, "name: x\n"))


def test_broken_yaml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not valid YAML") as excinfo:
        load_stack_spec(write(tmp_path, "name: [x\n"))
    assert "\n" not in str(excinfo.value)


def test_unknown_stack_name_lists_known_stacks() -> None:
    with pytest.raises(SpecError, match=r"unknown stack 'nope'; known stacks: diy, optimized"):
        load_stack_spec("nope")


def test_name_equals_url_is_an_endpoint_running_elsewhere() -> None:
    spec = load_stack_spec("gpu=https://llm.example.com:8443/")
    assert isinstance(spec, EndpointSpec)
    assert (spec.name, spec.endpoint, spec.model) == ("gpu", "https://llm.example.com:8443", None)
    with pytest.raises(SpecError, match="NAME=http"):
        load_stack_spec("gpu=ftp://x")


def test_an_endpoint_spec_file_needs_no_engine(tmp_path: Path) -> None:
    spec = load_stack_spec(write(tmp_path, "name: cluster\nendpoint: http://10.0.0.5:8000\n"
                                           "model: llama\napi_key_env: CLUSTER_KEY\n"))
    assert isinstance(spec, EndpointSpec)
    assert (spec.model, spec.api_key_env) == ("llama", "CLUSTER_KEY")
    with pytest.raises(SpecError, match="only stacks with an engine can be brought up"):
        load_local_stack_spec(write(tmp_path, "name: c\nendpoint: http://h:1\n"))
    with pytest.raises(SpecError, match="unknown field; allowed: name, description, endpoint"):
        load_stack_spec(write(tmp_path, "name: c\nendpoint: http://h:1\nbalancer: {}\n"))
    # How many replicas serve behind it, for per-replica capacity.
    replicas = load_stack_spec(write(tmp_path, "name: c\nendpoint: http://h:1\nreplicas: 4\n"))
    assert isinstance(replicas, EndpointSpec)
    assert replicas.replicas == 4


def test_a_stack_can_size_its_autoscaler_from_a_capacity_run(tmp_path: Path) -> None:
    run = tmp_path / "capacity"
    run.mkdir()
    (run / "summary.json").write_text('{"stacks": {"mine": {"concurrency_per_replica": 10}}}')
    spec = load_stack_spec(write(tmp_path, VALID + f"autoscaling:\n  policy: asymmetric\n"
                                                   f"  target_from: {run}\n"))
    assert not isinstance(spec, EndpointSpec)
    assert spec.autoscaling is not None
    assert spec.autoscaling.target_concurrency == 7.0
    missing = write(tmp_path, VALID + f"autoscaling:\n  target_from: {tmp_path / 'none'}\n")
    with pytest.raises(SpecError, match=r"stack.yaml: autoscaling.target_from: .* is not a "):
        load_stack_spec(missing)
