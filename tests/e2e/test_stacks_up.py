"""Each stack brought up by `harness up` with real vLLM on the embedded model.

Through the balancer: a completion and a streamed chat completion; after SIGINT (or SIGTERM), no
process of the stack is left.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from stacks.process import free_port, stop_trees
from tests.processes import still_running

pytestmark = pytest.mark.e2e
HARNESS = [sys.executable, "-m", "harness.cli"]
START_BUDGET_S = 300  # cold start with torch.compile on 2 cores; ~40-100 s seen


def read_endpoint(harness: subprocess.Popen[str], log: Path) -> str:
    """The one line `harness up` prints when the stack is ready."""
    assert harness.stdout is not None
    ready, _, _ = select.select([harness.stdout], [], [], START_BUDGET_S)
    assert ready, f"not ready within {START_BUDGET_S}s: {log.read_text()[-2000:]}"
    line = harness.stdout.readline()
    assert line, f"harness up exited {harness.wait()}: {log.read_text()[-2000:]}"
    return line


def stack_pids(root: psutil.Process) -> set[int]:
    return {p.pid for p in root.children(recursive=True)}


@pytest.mark.parametrize(("stack", "stop_signal"), [
    ("diy", signal.SIGINT), ("optimized", signal.SIGTERM)])
def test_harness_up_serves_through_the_balancer_and_a_signal_stops_all(
        stack: str, stop_signal: signal.Signals, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "harness.err"
    with log.open("w") as stderr:
        harness = subprocess.Popen(
            [*HARNESS, "up", stack, "--port", str(port), "--log-dir", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True,
        )
    try:
        line = read_endpoint(harness, log)
        assert line == f"endpoint: http://127.0.0.1:{port}\n"
        endpoint = line.split(" ", 1)[1].strip()
        pids = stack_pids(psutil.Process(harness.pid))
        assert len(pids) >= 7  # 2 replicas x (API server, engine core, worker) + balancer

        completion = httpx.post(f"{endpoint}/v1/completions", timeout=60, json={
            "model": "tiny", "prompt": "Fix the grammar: I could of went.", "max_tokens": 8})
        assert completion.status_code == 200, completion.text
        assert completion.json()["usage"]["completion_tokens"] == 8
        assert completion.headers["x-upstream"] in {"replica-0", "replica-1"}

        chat = {"model": "tiny", "max_tokens": 5, "stream": True,
                "messages": [{"role": "user", "content": "Shorten: see you tomorrow"}]}
        with httpx.stream("POST", f"{endpoint}/v1/chat/completions", json=chat,
                          timeout=60) as stream:
            assert stream.status_code == 200
            events = [line[6:] for line in stream.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"

        # The optimized stack serves the W8A8 per-channel copy; DIY the bf16 source.
        engine_log = (tmp_path / "replica-0.log").read_text()
        quantization = re.search(r"quantization=([\w-]*)", engine_log)
        assert quantization is not None, engine_log[-2000:]
        assert quantization.group(1) == ("compressed-tensors" if stack == "optimized"
                                         else "None")
        if stack == "optimized":
            served = re.search(r"model='([^']+)'", engine_log)
            assert served is not None
            assert "models/quantized/tiny-int8-channel-" in served.group(1)
            balancer_metrics = httpx.get(f"{endpoint}/metrics", timeout=10).text
            assert 'balancer_replica_healthy{replica="replica-0"} 1.0' in balancer_metrics
            assert "balancer_replica_external_load" in balancer_metrics

        os.kill(harness.pid, stop_signal)
        assert harness.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while still_running(pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert still_running(pids) == set()
    finally:
        if harness.poll() is None:
            stop_trees([harness])  # type: ignore[list-item]
        if harness.stdout is not None:
            harness.stdout.close()
