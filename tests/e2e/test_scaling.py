"""One scale-up and one scale-down of a real vLLM stack: the optimized stack with its
autoscaler's windows shortened to fit a test. Under load a second replica starts, joins the
balancer once healthy and serves; with the load gone it is drained, then stopped. No request
fails, and nothing of the stack is left running."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stacks.autoscaler.config import AutoscalingSpec
from stacks.event_log import read_events
from stacks.launcher import SCALING_EVENTS, Stack
from stacks.spec import ImageSpec, load_local_stack_spec
from tests.integration.test_autoscaler import Load, wait_for
from tests.processes import still_running

pytestmark = pytest.mark.e2e
REPLICA_START_S = 300  # one replica's start on 2 cores, beside a loaded one: ~40-90 s seen


def test_a_real_stack_scales_up_under_load_and_back_down(tmp_path: Path) -> None:
    spec = load_local_stack_spec("optimized").model_copy(update={
        # From this machine's environment: the image starts are `harness coldstart`'s subject.
        "image": ImageSpec(mode="none"),
        "autoscaling": AutoscalingSpec(policy="asymmetric", min_replicas=1, max_replicas=2,
                                       target_concurrency=2, interval_s=0.5,
                                       metric_window_s=2, down_window_s=5, down_period_s=0)})
    logs = tmp_path / "logs"
    events = logs / SCALING_EVENTS
    with Stack(spec, logs) as stack:
        assert [m.name for m in stack.replicas] == ["replica-0"]
        with Load(stack.endpoint, senders=6, body={"model": stack.served_model,
                                                   "prompt": "Fix the grammar: I could of went.",
                                                   "max_tokens": 16}) as heavy:
            joined = wait_for("replica_joined", events, REPLICA_START_S)
            started = time.monotonic()
            while time.monotonic() - started < 5:  # both serve for a while
                time.sleep(0.2)
        new = next(m for m in stack.replicas if m.name == "replica-1")
        assert {replica for _, replica in heavy.answers} == {"replica-0", "replica-1"}
        stopped = wait_for("replica_stopped", events, 60)
        assert stopped["replica"] == "replica-1"
        assert [m.name for m in stack.replicas] == ["replica-0"]
        assert still_running([new.process.pid]) == set()
        steps = [e["event"] for e in read_events(events) if e["event"] != "tick"]
        assert steps[:3] == ["scale_up", "replica_starting", "replica_joined"]
        assert float(str(joined["start_s"])) > 5  # a real engine's start
    assert {status for status, _ in heavy.answers} == {200}
