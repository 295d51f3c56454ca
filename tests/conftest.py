"""Shared fixtures: test-double replicas and real balancer processes, always stopped by PID."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stacks.launcher import health_ok
from stacks.process import free_port, spawn, stop_trees

FAKE_SERVER = [sys.executable, "-m", "tests.fakes.fake_openai_server"]


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url} exited with {process.returncode}"
        if health_ok(url, timeout_s=1.0):
            return
        time.sleep(0.05)
    raise AssertionError(f"{url} not healthy within {timeout_s}s")


def start_fakes(root: Path, knobs: dict[str, list[str]],
                processes: list[subprocess.Popen[bytes]]) -> dict[str, str]:
    """Fake OpenAI servers, one per name with its knobs, logs under `root`: name -> URL. Each
    started process is appended to `processes` at once, so the caller stops it."""
    urls = {}
    for name, options in knobs.items():
        port = free_port()
        process = spawn([*FAKE_SERVER, "--port", str(port), "--name", name, *options],
                        root / f"{name}.log")
        processes.append(process)
        urls[name] = f"http://127.0.0.1:{port}"
        wait_healthy(urls[name], process)
    return urls


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    stop_trees(started, grace_s=5)


@pytest.fixture
def fake_replica(processes: list[subprocess.Popen[bytes]], tmp_path: Path) -> Callable[..., str]:
    """Start a fake OpenAI server: `fake_replica("f0", "--chunk-delay-ms", "100")` -> URL."""

    def start(name: str, *knobs: str) -> str:
        port = free_port()
        process = spawn([*FAKE_SERVER, "--port", str(port), "--name", name, *knobs],
                        tmp_path / f"{name}.log")
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process)
        return url

    return start


@pytest.fixture
def balancer(processes: list[subprocess.Popen[bytes]], tmp_path: Path) -> Callable[..., str]:
    """Start a real balancer process over `{name: url}` replicas -> its URL."""

    def start(replicas: dict[str, str], *options: str) -> str:
        port = free_port()
        argv = [sys.executable, "-m", "stacks.balancer", "--port", str(port), *options]
        for name, url in replicas.items():
            argv += ["--replica", f"{name}={url}"]
        process = spawn(argv, tmp_path / "balancer.log")
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process)
        return url

    return start


@pytest.fixture(autouse=True)
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test logs to its own MLflow store, never to the checkout's `results/`."""
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
