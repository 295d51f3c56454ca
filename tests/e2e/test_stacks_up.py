"""Each stack brought up by `harness up` with real vLLM on the embedded model.

Through the balancer: a completion and a streamed chat completion. Each stack runs from its
image (diy eager, optimized lazy): its engine's processes map libtorch from the image, nothing
from this machine's Python. After SIGINT (or SIGTERM), no process of the stack is left, and
nothing is left mounted.
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
# A first start builds the stack's image (~90 s), then pulls or mounts it; then the engine's
# own start with torch.compile on 2 cores: ~40-130 s seen.
START_BUDGET_S = 500
ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"


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


def assert_engine_runs_from_its_image(pids: set[int], mode: str) -> None:
    """The processes running the image's interpreter (API server, engine core, worker, their
    helpers) map nothing from this machine's Python installations, and the engine's three map
    libtorch from the image."""
    node = str(IMAGES / "node" / mode)
    host_pythons = (str(ROOT / ".venv"), sys.base_prefix)
    with_torch = 0
    for pid in pids:
        if not psutil.Process(pid).exe().startswith(node):
            continue
        mapped = {fields[5] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                  if len(fields := line.split(maxsplit=5)) == 6}
        assert [path for path in mapped if path.startswith(host_pythons)] == []
        with_torch += any(path.startswith(node) and path.endswith("libtorch_cpu.so")
                          for path in mapped)
    assert with_torch >= 3, [psutil.Process(pid).cmdline()[:3] for pid in pids]


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
        served = re.search(r"model='([^']+)'", engine_log)
        assert served is not None
        mode = "lazy" if stack == "optimized" else "eager"
        assert f"images/node/{mode}/" in served.group(1)
        manifest = json.loads((IMAGES / "built" / stack / "manifest.json").read_text())
        assert ("models/quantized/tiny-int8-channel-" in manifest["contents"]["model"]) == (
            stack == "optimized")
        assert_engine_runs_from_its_image(pids, mode)
        if stack == "optimized":
            balancer_metrics = httpx.get(f"{endpoint}/metrics", timeout=10).text
            assert 'balancer_replica_healthy{replica="replica-0"} 1.0' in balancer_metrics
            assert "balancer_replica_external_load" in balancer_metrics

        os.kill(harness.pid, stop_signal)
        assert harness.wait(timeout=60) == 0
        deadline = time.monotonic() + 10
        while still_running(pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert still_running(pids) == set()
        # Nothing of the image is left mounted, and no fetcher or registry runs on.
        assert "images/node/lazy" not in Path("/proc/mounts").read_text()
        left = [proc.name() for proc in psutil.process_iter(["name"])
                if proc.info["name"] in ("nbdkit", "nbdfuse", "squashfuse_ll", "nginx")
                and proc.status() != psutil.STATUS_ZOMBIE]
        assert left == []
    finally:
        if harness.poll() is None:
            stop_trees([harness])  # type: ignore[list-item]
        if harness.stdout is not None:
            harness.stdout.close()
