"""How a command leaves when it is asked to stop: SIGINT and SIGTERM become KeyboardInterrupt,
so Ctrl-C, `kill PID` and an exception all pass through the same `finally` that stops every
process the command started; a measurement cut short says what it kept."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import typer
from rich.console import Console

err = Console(stderr=True)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt, even where SIGINT came in ignored (a
    background job of a non-interactive shell starts that way), so every way out of a command
    passes through its `finally`."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def interrupt_keeps(what: str, hint: str = "") -> Iterator[None]:
    """Ctrl-C ends a measurement with status 130, saying what it kept (and `hint`)."""
    try:
        yield
    except KeyboardInterrupt:
        err.print(f"{what} interrupted; every finished trial is kept in its results "
                  f"folder{hint}")
        raise typer.Exit(130) from None
