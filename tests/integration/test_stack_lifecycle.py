"""The launcher's whole lifecycle, with fake OpenAI servers standing in for vLLM replicas."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from stacks import launcher
from stacks.errors import ModelMissing, StackStartError
from stacks.launcher import Stack
from stacks.spec import BalancerSpec, StackSpec
from tests.processes import still_running


def fake_spec(tmp_path: Path, replicas: int = 2, timeout_s: float = 30) -> StackSpec:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return StackSpec.model_validate({
        "name": "fake", "engine": {"model": str(model)}, "replicas": replicas,
        "balancer": {"policy": "round_robin"}, "startup_timeout_s": timeout_s,
    })


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def argv(spec: StackSpec, port: int) -> list[str]:
        return [sys.executable, "-m", "tests.fakes.fake_openai_server", "--port", str(port),
                "--name", f"fake-{port}"]

    monkeypatch.setattr(launcher, "replica_argv", argv)


def tree_pids(stack: Stack) -> list[int]:
    members = [*stack.replicas, stack.balancer]
    pids = []
    for member in members:
        assert member is not None
        pids.append(member.process.pid)
        pids += [p.pid for p in psutil.Process(member.process.pid).children(recursive=True)]
    return pids


@pytest.mark.usefixtures("fake_engine")
def test_stack_serves_through_its_balancer_and_stops_clean(tmp_path: Path) -> None:
    with Stack(fake_spec(tmp_path), tmp_path / "logs") as stack:
        pids = tree_pids(stack)
        served = {httpx.post(f"{stack.endpoint}/v1/completions", json={}, timeout=10)
                  .headers["x-upstream"] for _ in range(4)}
        assert served == {"replica-0", "replica-1"}
        assert (tmp_path / "logs" / "replica-1.log").exists()
    assert still_running(pids) == set()


@pytest.mark.usefixtures("fake_engine")
def test_exception_inside_the_block_still_stops_everything(tmp_path: Path) -> None:
    pids: list[int] = []

    def serve_then_fail() -> None:
        with Stack(fake_spec(tmp_path), tmp_path) as stack:
            pids.extend(tree_pids(stack))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        serve_then_fail()
    assert len(pids) == 5  # the balancer; each replica and the reaper that leads its group
    assert still_running(pids) == set()


def test_replica_that_dies_is_named_with_its_log_and_others_are_stopped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crashing = [sys.executable, "-c", "import sys; print('engine exploded'); sys.exit(3)"]
    started: list[int] = []

    def first_crashes(spec: StackSpec, port: int) -> list[str]:
        started.append(port)
        if len(started) == 1:
            return crashing
        return [sys.executable, "-m", "tests.fakes.fake_openai_server", "--port", str(port)]

    monkeypatch.setattr(launcher, "replica_argv", first_crashes)
    stack = Stack(fake_spec(tmp_path), tmp_path / "logs")
    with pytest.raises(StackStartError) as excinfo:
        stack.start()
    message = str(excinfo.value)
    assert "fake/replica-0 exited with code 3" in message
    assert "engine exploded" in message
    assert len(started) == 2
    assert stack.replicas == []
    assert stack.balancer is None
    healthy_port = started[1]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{healthy_port}/health", timeout=2)


def test_replica_that_never_gets_healthy_times_out(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "replica_argv", lambda spec, port: [
        sys.executable, "-c", "import time; print('loading forever', flush=True); "
                              "time.sleep(600)"])
    stack = Stack(fake_spec(tmp_path, replicas=1, timeout_s=1), tmp_path / "logs")
    with pytest.raises(StackStartError, match=r"(?s)replica-0 not healthy after 1s.*loading"):
        stack.start()
    assert stack.replicas == []


def test_missing_model_directory_says_how_to_build_it(tmp_path: Path) -> None:
    spec = StackSpec.model_validate({"name": "x", "engine": {"model": str(tmp_path / "none")}})
    with pytest.raises(ModelMissing, match="harness model build"):
        Stack(spec, tmp_path).start()


@pytest.mark.usefixtures("fake_engine")
def test_a_replica_that_exits_is_restarted_on_its_port_and_served_again(tmp_path: Path) -> None:
    spec = fake_spec(tmp_path).model_copy(update={"balancer": BalancerSpec(
        policy="round_robin", health_interval_s=0.5)})
    with Stack(spec, tmp_path / "logs") as stack:
        assert stack.supervisor is not None
        victim = stack.replicas[1]
        first_pid, port = victim.process.pid, victim.port
        os.killpg(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not any(event["event"] == "replica_ready" for event in stack.supervisor.events):
            assert time.monotonic() < deadline, stack.supervisor.events
            time.sleep(0.2)
        exited, ready = stack.supervisor.events
        assert (exited["replica"], exited["code"], exited["restarts"]) == ("replica-1", -9, 1)
        assert ready["replica"] == "replica-1"
        assert 0 < ready["down_s"] < 30
        assert victim.port == port
        assert victim.process.pid != first_pid
        deadline = time.monotonic() + 10
        served: set[str] = set()
        while served != {"replica-0", "replica-1"}:  # back in rotation once /health answers
            assert time.monotonic() < deadline, served
            answer = httpx.post(f"{stack.endpoint}/v1/completions", json={}, timeout=10)
            assert answer.status_code == 200
            served.add(answer.headers["x-upstream"])
        pids = tree_pids(stack)
    lines = (tmp_path / "logs" / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["replica_exited", "replica_ready"]
    assert still_running(pids) == set()  # the restarted replica is stopped with the rest
