"""The launcher's whole lifecycle, with fake OpenAI servers standing in for vLLM replicas."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import psutil
import pytest

from stacks import launcher
from stacks.errors import ModelMissing, StackStartError
from stacks.launcher import Stack
from stacks.spec import StackSpec
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
    assert len(pids) == 3
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
