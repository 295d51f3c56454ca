"""Progress on stderr: one line per replica and the balancer while a stack starts, and a bar
of requests recorded while load runs.

Observers of `stacks.launcher.Stack` and `harness.run.Experiment`, which never print.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from harness.experiments.capacity.search import SearchResult
from harness.report.results import ProbeRow, StackFigures
from harness.report.scorecard_results import ROW_LABELS


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


class RunProgress:
    """`harness run` on stderr: stack start-up lines, then a bar of requests recorded."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._start: StartProgress | None = None
        self._load: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop_live()

    def _stop_live(self) -> None:
        if self._start is not None:
            self._start.__exit__(None, None, None)
            self._start = None
        if self._load is not None:
            self._load.stop()
            self._load = None

    def stack_starting(self, stack: str, trial: int) -> StartProgress:
        self._stop_live()
        self.console.rule(f"{stack} · trial {trial}", style="dim")
        self._start = StartProgress(stack, self.console).__enter__()
        return self._start

    def load_started(self, stack: str, trial: int, requests: int) -> None:
        self._stop_live()
        self._load = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self.console, transient=False,
        )
        self._task = self._load.add_task(f"{stack} · trial {trial} · requests recorded",
                                         total=requests)
        self._load.start()

    def load_progress(self, recorded: int) -> None:
        if self._load is not None and self._task is not None:
            self._load.update(self._task, completed=recorded)

    def trial_done(self, stack: str, trial: int, figures: StackFigures) -> None:
        self._stop_live()
        success = "–" if figures.success_rate is None else f"{figures.success_rate:.4f}"
        p99 = "–" if figures.latency_p99_s is None else f"{figures.latency_p99_s:.3f} s"
        self.console.print(f"{stack} · trial {trial}: {figures.throughput_qps:.2f} QPS, "
                           f"success {success}, P99 {p99}", highlight=False)


class QualityProgress(RunProgress):
    """`harness quality` on stderr: stack start-up lines, then a bar of prompts answered."""

    def __enter__(self) -> QualityProgress:
        return self

    def stack_starting(self, stack: str, trial: int = 1) -> StartProgress:
        self._stop_live()
        self.console.rule(stack, style="dim")
        self._start = StartProgress(stack, self.console).__enter__()
        return self._start

    def answered(self, stack: str, done: int, total: int) -> None:
        if self._load is None:
            self.load_started(stack, 1, total)
            assert self._load is not None
            assert self._task is not None
            self._load.update(self._task, description=f"{stack} · greedy answers")
        self.load_progress(done)
        if done == total:
            self._stop_live()


class CapacityProgress(RunProgress):
    """`harness capacity` on stderr: start-up lines per stack and trial, then a bar of
    searches done (with the time so far) above a bar of the current probe's requests, and a
    line per probe and per search as each ends."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console)
        self.searches = 0  # known once the run has its stacks (ablation adds some)
        self.searched = 0
        self._began = time.monotonic()
        self._where = ""
        self._overall: TaskID | None = None

    def __enter__(self) -> CapacityProgress:
        return self

    def searches_planned(self, searches: int) -> None:
        self.searches = searches
        self._began = time.monotonic()

    def _elapsed(self) -> str:
        minutes, seconds = divmod(int(time.monotonic() - self._began), 60)
        return f"{minutes}:{seconds:02d} elapsed"

    def stack_starting(self, stack: str, trial: int) -> StartProgress:
        self._where = f"{stack} · trial {trial}"
        self._stop_live()
        self.console.rule(f"capacity search {self.searched + 1}/{self.searches}: "
                          f"{self._where} · {self._elapsed()}", style="dim")
        self._start = StartProgress(stack, self.console).__enter__()
        return self._start

    def probe_started(self, stack: str, trial: int, probe: int, rate_qps: float,
                      requests: int) -> None:
        self._stop_live()
        self._load = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self.console, transient=True,
        )
        self._overall = self._load.add_task(
            f"searches done ({self._where} now, {self._elapsed()})", total=self.searches,
            completed=self.searched)
        self._task = self._load.add_task(f"probe {probe} · {rate_qps:g} QPS · requests",
                                         total=requests)
        self._load.start()

    def probe_done(self, stack: str, trial: int, row: ProbeRow) -> None:
        self._stop_live()
        head = f"{self._where} · probe {row.probe} · {row.rate_qps:g} QPS:"
        if row.stopped_early:
            # Its figures cover only what had finished: say why it stopped instead.
            self.console.print(f"{head} [red]fail[/red] — stopped early, {row.stopped_early}",
                               highlight=False)
            return
        p99 = "–" if row.latency_p99_s is None else f"{row.latency_p99_s * 1000:,.0f} ms"
        success = "–" if row.success_rate is None else f"{row.success_rate:.4f}"
        outcome = "[green]pass[/green]" if row.passed else "[red]fail[/red]"
        self.console.print(f"{head} {outcome} — P99 {p99}, success {success}",
                           highlight=False)

    def search_done(self, stack: str, trial: int, result: SearchResult) -> None:
        self._stop_live()
        self.searched += 1
        if result.capacity_qps is None:
            said = "[red]fails the SLO at the lowest rate probed[/red]"
        elif result.failing_qps is None:
            said = f"at least {result.capacity_qps:g} QPS (never failed)"
        else:
            said = (f"capacity [bold]{result.capacity_qps:g} QPS[/bold] (fails at "
                    f"{result.failing_qps:g})")
        self.console.print(f"{self._where}: {said}, {len(result.probes)} probes",
                           highlight=False)


class ScorecardProgress(CapacityProgress):
    """`harness scorecard` on stderr: a capacity run's lines, and a bar and a line for each of
    the phases a trial serves beside its search."""

    PHASES = {"load": ROW_LABELS["p99_at_load"], "kill": ROW_LABELS["success_under_kill"],
              "spike": "a spike"}

    def __enter__(self) -> ScorecardProgress:
        return self

    def phase_started(self, stack: str, trial: int, phase: str, requests: int) -> None:
        self.load_started(stack, trial, requests)
        if self._load is not None and self._task is not None:
            self._load.update(self._task, description=f"{self._where} · "
                              f"{self.PHASES.get(phase, phase)} · requests recorded")

    def phase_done(self, stack: str, trial: int, phase: str, figures: StackFigures) -> None:
        self._stop_live()
        success = "–" if figures.success_rate is None else f"{figures.success_rate:.4f}"
        p99 = ("–" if figures.latency_p99_s is None
               else f"{figures.latency_p99_s * 1000:,.0f} ms")
        self.console.print(f"{self._where} · {self.PHASES.get(phase, phase)}: success "
                           f"{success}, P99 {p99} over {figures.requests} requests",
                           highlight=False)
