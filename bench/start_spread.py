"""How far a stack's speed moves from one start to the next, against how far it moves within one
start: each start brings the stack up (`harness up`), sends a short closed-loop warm-up, then
times `--bursts` bursts of identical completions (fixed prompt, `--tokens` output tokens,
`ignore_eos`, `--concurrency` at a time) and takes it down.

If starts differ more than the bursts of one start would explain (the within-start spread ÷
√bursts), something a start sets up moves the speed; if not, the machine drifts on its own.
`--prefix` runs the stack under a wrapper, for example `setarch x86_64 -R` (no address-space
randomization) to see whether memory layout is that something.

The client and everything it starts run on the machine's last core (the stack inherits the
affinity, so its one replica shares that core with the client): the same in every start, so
the spread compares like with like; the level is not a capacity.

    .venv/bin/python bench/start_spread.py [--stack diy] [--starts 5] [--bursts 3] \\
        [--prefix "setarch x86_64 -R"]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.experiments.target import check_endpoint
from stacks.launcher import health_ok
from stacks.spec import EndpointSpec

ROOT = Path(__file__).resolve().parent.parent


def wait_ready(base: str, timeout_s: float = 300.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if health_ok(base, timeout_s=1.0):
            return time.monotonic() - started
        time.sleep(1)
    raise SystemExit(f"the stack did not answer {base}/health within {timeout_s:g} s")


async def burst(base: str, model: str, requests: int, concurrency: int, tokens: int) -> float:
    """Completed requests per second over one burst."""
    body = {"model": model, "prompt": "hello " * 45, "max_tokens": tokens,
            "ignore_eos": True, "temperature": 0}
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=60) as client:
        async def one() -> None:
            async with gate:
                (await client.post(f"{base}/v1/completions", json=body)).raise_for_status()
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        return requests / (time.perf_counter() - started)


def one_start(args: argparse.Namespace) -> tuple[float, list[float]]:
    base = f"http://127.0.0.1:{args.port}"
    command = [*shlex.split(args.prefix), str(ROOT / ".venv/bin/harness"), "up", args.stack,
               "--replicas", "1", "--port", str(args.port)]
    stack = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        ready_s = wait_ready(base)
        model = check_endpoint(EndpointSpec(name="started", endpoint=base))  # as served
        asyncio.run(burst(base, model, 48, args.concurrency, args.tokens))  # warm-up, untimed
        return ready_s, [asyncio.run(burst(base, model, args.requests, args.concurrency,
                                           args.tokens)) for _ in range(args.bursts)]
    finally:
        os.killpg(stack.pid, signal.SIGTERM)
        stack.wait(60)
        time.sleep(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="diy")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--requests", type=int, default=240, help="per burst")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--prefix", default="", help="a command the stack runs under")
    args = parser.parse_args()
    if args.starts < 2 or args.bursts < 2:
        sys.exit("--starts and --bursts must each be 2 or more: a spread needs two")
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    means, within = [], []
    for start in range(1, args.starts + 1):
        ready_s, rates = one_start(args)
        means.append(statistics.mean(rates))
        within.append(statistics.stdev(rates) / statistics.mean(rates))
        print(f"start {start}: ready in {ready_s:.0f} s; requests/s per burst: "
              + ", ".join(f"{rate:.1f}" for rate in rates), flush=True)
    between = statistics.stdev(means) / statistics.mean(means)
    inside = statistics.mean(within)
    print(f"starts' means: {', '.join(f'{mean:.1f}' for mean in means)} "
          f"(highest ÷ lowest {max(means) / min(means):.2f})")
    print(f"spread between starts {between:.1%} (sd ÷ mean); within a start {inside:.1%}, "
          f"which alone would move a start's mean by {inside / args.bursts ** 0.5:.1%}")


if __name__ == "__main__":
    main()
