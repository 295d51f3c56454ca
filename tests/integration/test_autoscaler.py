"""The autoscaler against test-double replicas: it scales up under load, a new replica joins the
balancer once healthy, and a scale-down drains before it stops, so no request fails."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from stacks import launcher
from stacks.event_log import read_events
from stacks.launcher import SCALING_EVENTS, SUPERVISOR_EVENTS, Stack
from stacks.spec import StackSpec
from tests.processes import still_running

LATENCY_MS = 400
UNHEALTHY_AT_FIRST_S = 1.5  # a fresh replica answers 503, to /health and to requests, so long


@pytest.fixture
def slow_fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    def argv(spec: StackSpec, port: int) -> list[str]:
        return [sys.executable, "-m", "tests.fakes.fake_openai_server", "--port", str(port),
                "--name", f"fake-{port}", "--latency-ms", str(LATENCY_MS),
                "--unhealthy-from-s", "0", "--unhealthy-for-s", str(UNHEALTHY_AT_FIRST_S)]

    monkeypatch.setattr(launcher, "replica_argv", argv)


def scaling_spec(tmp_path: Path) -> StackSpec:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return StackSpec.model_validate({
        "name": "scaled", "engine": {"model": str(model)}, "replicas": 1,
        "balancer": {"policy": "p2c", "health_interval_s": 0.2},
        "cpu": {"binding": "none"}, "startup_timeout_s": 30,
        "autoscaling": {"policy": "asymmetric", "min_replicas": 1, "max_replicas": 2,
                        "target_concurrency": 1, "interval_s": 0.2, "metric_window_s": 0.6,
                        "up_window_s": 0, "down_window_s": 2, "down_period_s": 0,
                        "tolerance": 0}})


class Load:
    """`senders` clients in closed loop; every answer's status and replica kept."""

    def __init__(self, endpoint: str, senders: int, body: dict[str, object] | None = None) -> None:
        self.endpoint = endpoint
        self.body = body or {}
        self.answers: list[tuple[int, str]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send) for _ in range(senders)]

    def _send(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                answer = client.post(f"{self.endpoint}/v1/completions", json=self.body)
                self.answers.append((answer.status_code, answer.headers["x-upstream"]))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def wait_for(event: str, log: Path, timeout_s: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [e for e in read_events(log) if e["event"] == event]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {event} in {log} within {timeout_s} s: {read_events(log)}")


@pytest.mark.usefixtures("slow_fake_engine")
def test_scales_up_joins_when_healthy_and_drains_before_it_stops(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    events = logs / SCALING_EVENTS
    with Stack(scaling_spec(tmp_path), logs) as stack:
        assert [m.name for m in stack.replicas] == ["replica-0"]
        with Load(stack.endpoint, senders=4) as heavy:
            joined = wait_for("replica_joined", events)
            joined_at = time.monotonic()
            while time.monotonic() - joined_at < 2:  # both serve for a while
                time.sleep(0.1)
        assert {replica for _, replica in heavy.answers} == {"replica-0", "replica-1"}
        new = next(m for m in stack.replicas if m.name == "replica-1")
        # One sender keeps a request in flight somewhere while the fleet shrinks.
        with Load(stack.endpoint, senders=1) as light:
            stopped = wait_for("replica_stopped", events)
            time.sleep(1)
        assert stopped["replica"] == "replica-1"
        # Up but answering 503 at first: it joined only once /health said 200 (and the 200s
        # below say no request reached it before).
        assert float(str(joined["start_s"])) >= UNHEALTHY_AT_FIRST_S
        assert [m.name for m in stack.replicas] == ["replica-0"]
        assert still_running([new.process.pid]) == set()
        kinds = [e["event"] for e in read_events(events)]
        assert kinds.index("scale_up") < kinds.index("replica_starting") \
            < kinds.index("replica_joined") < kinds.index("scale_down") \
            < kinds.index("replica_draining") < kinds.index("replica_stopped")
        ticks = [e for e in read_events(events) if e["event"] == "tick"]
        assert max(int(str(t["ready"])) for t in ticks) == 2
        # The supervisor let the retired replica be.
        assert not [e for e in read_events(logs / SUPERVISOR_EVENTS)
                    if e["replica"] == "replica-1"]
    assert {status for status, _ in heavy.answers + light.answers} == {200}
