"""Keeping a stack up for `harness up`: model check, log folder, and waiting for a signal.

SIGINT and SIGTERM become KeyboardInterrupt, so Ctrl-C, `kill PID` and an exception all leave
through the same `finally: stack.stop()`, which stops every process of the stack.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType

from harness.model import ensure_model_dir
from harness.quantized_models import ensure_quantized
from stacks.errors import StackStartError
from stacks.launcher import Member, Stack
from stacks.spec import PROJECT_ROOT, StackSpec


def default_log_dir(stack_name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return PROJECT_ROOT / "logs" / f"{stack_name}-{stamp}"


def ensure_model(spec: StackSpec) -> StackSpec:
    """The spec as the launcher should run it: its model directory there (the embedded model
    is built on first use) and, for a quantized engine, `engine.model` pointing at the
    quantized copy, written on first use."""
    source = ensure_model_dir(spec.engine.model_path(), "config.json",
                              f"stack {spec.name}: engine.model")
    quantization = spec.engine.quantization
    if quantization is None:
        return spec
    served = ensure_quantized(source, quantization.scheme, quantization.granularity)
    engine = spec.engine.model_copy(update={"model": str(served), "quantization": None})
    return spec.model_copy(update={"engine": engine})


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt, even where SIGINT came in ignored (a
    background job of a non-interactive shell starts that way)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def hold(stack: Stack, on_replica_lost: Callable[[Member, int], None],
         poll_s: float = 1.0) -> None:
    """Wait until KeyboardInterrupt (SIGINT/SIGTERM) ends it; raise if the balancer dies."""
    lost: set[str] = set()
    while True:
        time.sleep(poll_s)
        if stack.balancer is not None and (code := stack.balancer.process.poll()) is not None:
            raise StackStartError(f"{stack.spec.name}/balancer exited with code {code}; "
                                  f"see {stack.balancer.log_path}")
        for replica in stack.replicas:
            code = replica.process.poll()
            if code is not None and replica.name not in lost:
                lost.add(replica.name)
                on_replica_lost(replica, code)
