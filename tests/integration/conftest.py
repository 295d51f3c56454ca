"""One real, short `harness run` logged to a real local MLflow store, shared by the tracking
and dashboard tests: two test-double endpoints (one behind a bearer key), real Locust, the
`harness` command line as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from stacks import launcher
from stacks.process import stop_trees
from stacks.spec import StackSpec
from tests.conftest import start_fakes

SECRET = "sk-test-do-not-log-0123456789"
KEY_VARIABLE = "HARNESS_TEST_API_KEY"


@dataclass(frozen=True)
class LoggedRun:
    results: Path
    uri: str
    env: dict[str, str]
    stdout: str
    stderr: str


def harness(*args: str, env: dict[str, str], timeout: float = 300) -> \
        subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def logged_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggedRun]:
    root = tmp_path_factory.mktemp("logged-run")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        urls = start_fakes(root, {"fast": [], "slow": ["--latency-ms", "30"]}, processes)
        keyed = root / "keyed.yaml"
        # A key pasted into a description by mistake must still never reach the store.
        keyed.write_text(yaml.safe_dump({"name": "keyed", "endpoint": urls["slow"],
                                         "api_key_env": KEY_VARIABLE,
                                         "description": f"staging, key {SECRET}"}))
        workload = root / "workload.yaml"
        workload.write_text(yaml.safe_dump({
            "name": "tracking_test", "arrival": "poisson", "rate_qps": 20, "duration_s": 4,
            "warmup_s": 1, "timeout_s": 10, "max_in_flight": 16, "slo_s": 0.5,
            "prompt_tokens": {"mean": 8}, "output_tokens": {"mean": 4}}))
        uri = f"sqlite:///{root / 'store' / 'mlflow.db'}"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, KEY_VARIABLE: SECRET}
        results = root / "results"
        done = harness("run", "--stacks", f"plain={urls['fast']},{keyed}", "--workload",
                       str(workload), "--experiment", "tracking-test", "--out", str(results),
                       env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        yield LoggedRun(results, uri, env, done.stdout, done.stderr)
    finally:
        stop_trees(processes, grace_s=5)


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Launched stacks whose replicas are fake OpenAI servers (test doubles) answering in
    150 ms, under the real launcher, supervisor and balancer."""
    def argv(spec: StackSpec, port: int, image: Path | None = None) -> list[str]:
        assert image is None  # these stacks run from this machine
        return [sys.executable, "-m", "tests.fakes.fake_openai_server", "--port", str(port),
                "--name", f"fake-{port}", "--latency-ms", "150"]

    monkeypatch.setattr(launcher, "replica_argv", argv)
