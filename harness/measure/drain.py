"""Waiting for a stack to finish what the last load left in it, before the next one starts: a
capacity probe must not inherit its predecessor's queue."""

from __future__ import annotations

import time

from harness.client import get
from harness.errors import EndpointError
from stacks.load import BALANCER_LOAD_METRICS, ENGINE_LOAD_METRICS, requests_in_progress

# What a stack reports as work in progress: our balancer's in-flight requests, or a vLLM
# server's running and waiting ones when the endpoint is vLLM itself.
BUSY_METRICS = BALANCER_LOAD_METRICS | ENGINE_LOAD_METRICS
DRAIN_LIMIT_S = 60.0
SETTLE_S = 2.0  # the pause instead, where the endpoint reports no load we know
POLL_S = 0.5


def busy_requests(endpoint: str, headers: dict[str, str]) -> int | None:
    """Requests the endpoint reports in progress (None: it reports none we know)."""
    try:
        text = get(f"{endpoint}/metrics", headers, timeout_s=5).text
        return requests_in_progress(text, BUSY_METRICS)
    except (EndpointError, ValueError):
        return None


def wait_idle(endpoint: str, headers: dict[str, str]) -> float:
    """Wait until the endpoint reports nothing in progress (at most `DRAIN_LIMIT_S`), or
    `SETTLE_S` where it reports nothing; the seconds waited."""
    started = time.monotonic()
    while (busy := busy_requests(endpoint, headers)) is not None and busy > 0:
        if time.monotonic() - started > DRAIN_LIMIT_S:
            break
        time.sleep(POLL_S)
    if busy is None:
        time.sleep(SETTLE_S)
    return time.monotonic() - started
