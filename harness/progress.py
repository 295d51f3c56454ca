"""Progress shown while a stack starts: one line per replica and the balancer, on stderr.

An observer of `stacks.launcher.Stack`, so the launcher itself never prints.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


class StartProgress:
    def __init__(self, stack_name: str, console: Console | None = None) -> None:
        self.stack_name = stack_name
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> StartProgress:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def on_starting(self, name: str, log_path: Path) -> None:
        self._tasks[name] = self._progress.add_task(
            f"{self.stack_name}/{name} starting (log: {log_path})", total=1
        )

    def on_ready(self, name: str, elapsed_s: float) -> None:
        self._progress.update(
            self._tasks[name], completed=1,
            description=f"{self.stack_name}/{name} ready in {elapsed_s:.0f}s",
        )
