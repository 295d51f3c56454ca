from __future__ import annotations

import subprocess

import pytest

from stacks import launcher
from stacks.balancer.command import balancer_argv
from stacks.errors import StackStartError
from stacks.launcher import (
    helper_cores,
    pinned,
    replica_argv,
    replica_env,
)
from stacks.spec import StackSpec


def spec(**changes: object) -> StackSpec:
    base: dict[str, object] = {"name": "s", "engine": {"model": "/models/m"}, "replicas": 2}
    return StackSpec.model_validate(base | changes)


def test_replica_argv_maps_spec_fields_to_vllm_flags() -> None:
    engine = {"model": "/models/m", "served_model_name": "tiny", "api_server_count": 2,
              "args": {"dtype": "bfloat16", "enforce-eager": True,
                       "enable-prefix-caching": False, "max-num-seqs": None}}
    argv = replica_argv(spec(engine=engine), port=8001)
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert argv[3:] == ["--model", "/models/m", "--host", "127.0.0.1", "--port", "8001",
                        "--served-model-name", "tiny", "--api-server-count", "2",
                        "--dtype", "bfloat16", "--enforce-eager", "--no-enable-prefix-caching"]


def test_one_api_server_is_vllm_default_and_not_passed() -> None:
    assert "--api-server-count" not in replica_argv(spec(), port=1)


@pytest.mark.parametrize(("cores", "replicas", "expected"), [
    ([0, 1], 2, ["0", "1"]),
    ([0, 1, 2, 3, 4, 5, 6, 7], 2, ["0,1,2,3", "4,5,6,7"]),
    ([2, 3, 5], 3, ["2", "3", "5"]),
    ([0, 1], 3, ["0", "1", "0"]),
])
def test_auto_binding_gives_each_replica_its_own_cores(
        cores: list[int], replicas: int, expected: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(cores))
    stack = spec(replicas=replicas, cpu={"binding": "auto"})
    bound = [replica_env(stack, i)["VLLM_CPU_OMP_THREADS_BIND"] for i in range(replicas)]
    assert bound == expected


def test_explicit_binding_is_used_round_the_list() -> None:
    stack = spec(replicas=3, cpu={"binding": ["0-1", "2-3"]})
    bound = [replica_env(stack, i)["VLLM_CPU_OMP_THREADS_BIND"] for i in range(3)]
    assert bound == ["0-1", "2-3", "0-1"]


def test_binding_none_leaves_vllm_to_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    assert "VLLM_CPU_OMP_THREADS_BIND" not in replica_env(spec(cpu={"binding": "none"}), 0)


def test_pin_replica_confines_every_process_of_a_replica_to_its_cores() -> None:
    stack = spec(cpu={"binding": ["0", "1"], "pin": "replica"})
    argv = ["python", "-m", "vllm"]
    assert pinned(argv, stack, 1) == [launcher.TASKSET, "--cpu-list", "1", *argv]
    # taskset execs the command with the mask, which the replica's children inherit.
    shown = subprocess.run(pinned(["sh", "-c", "taskset -c -p $$"], stack, 0),
                           capture_output=True, text=True, check=True)
    assert shown.stdout.strip().endswith(": 0")


def test_pin_threads_or_no_binding_leaves_the_processes_free() -> None:
    argv = ["python"]
    assert pinned(argv, spec(cpu={"binding": ["0"], "pin": "threads"}), 0) == argv
    assert pinned(argv, spec(cpu={"binding": "none", "pin": "replica"}), 0) == argv


def test_pin_replica_without_taskset_is_refused_in_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "TASKSET", None)
    with pytest.raises(StackStartError, match="needs util-linux's taskset"):
        pinned(["python"], spec(cpu={"binding": ["0"], "pin": "replica"}), 0)


@pytest.mark.parametrize(("cores", "replicas", "balancer", "load_generator"), [
    ([0, 1], 2, "0", "1"),  # spread: neither replica's core carries both helpers
    ([0, 1, 2, 3], 2, "0,1", "2,3"),
    ([0, 1], 1, "0,1", "0,1"),  # one replica: the helpers share its cores
])
def test_pinned_replicas_place_their_helpers_the_same_in_every_run(
        cores: list[int], replicas: int, balancer: str, load_generator: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(cores))
    placed = helper_cores(spec(replicas=replicas, cpu={"binding": "auto", "pin": "replica"}))
    assert (placed.balancer, placed.load_generator) == (balancer, load_generator)
    free = helper_cores(spec(replicas=replicas, cpu={"binding": "auto", "pin": "threads"}))
    assert (free.balancer, free.load_generator) == (None, None)


def test_spec_env_reaches_the_replica() -> None:
    stack = spec(engine={"model": "/m", "env": {"VLLM_CPU_KVCACHE_SPACE": "1"}})
    assert replica_env(stack, 0)["VLLM_CPU_KVCACHE_SPACE"] == "1"


def test_every_replica_skips_the_engine_s_unloadable_compile_cache_unless_told(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_USE_AOT_COMPILE", raising=False)
    assert replica_env(spec(engine={"model": "/m"}), 0)["VLLM_USE_AOT_COMPILE"] == "0"
    monkeypatch.setenv("VLLM_USE_AOT_COMPILE", "1")
    assert replica_env(spec(engine={"model": "/m"}), 0)["VLLM_USE_AOT_COMPILE"] == "1"
    told = spec(engine={"model": "/m", "env": {"VLLM_USE_AOT_COMPILE": "1"}})
    monkeypatch.delenv("VLLM_USE_AOT_COMPILE")
    assert replica_env(told, 0)["VLLM_USE_AOT_COMPILE"] == "1"


def test_balancer_argv_names_every_replica_and_the_policy() -> None:
    from pathlib import Path

    from stacks.launcher import Member

    members = [Member(f"replica-{i}", "127.0.0.1", 9000 + i, Path("x"), None)  # type: ignore[arg-type]
               for i in range(2)]
    argv = balancer_argv(spec(balancer={"policy": "p2c"}), members, port=8080, admin_port=8090)
    assert argv[argv.index("--policy") + 1] == "p2c"
    assert argv[argv.index("--port") + 1] == "8080"
    assert argv[argv.index("--admin-port") + 1] == "8090"
    replicas = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--replica"]
    assert replicas == ["replica-0=http://127.0.0.1:9000", "replica-1=http://127.0.0.1:9001"]
