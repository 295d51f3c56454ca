"""What every `harness` command shares: options turned into a validated config (input it refuses
is a one-line UsageError naming the option), and a finished measurement's report: its tables,
warnings and verdicts on the console, then its logging to MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.text import Text

from harness.errors import TrackingError, UsageError
from harness.report.log_folder import log_saved
from harness.report.tables import ReportTable
from harness.report.tracking import tracking_uri

err = Console(stderr=True)
Config = TypeVar("Config", bound=BaseModel)
# Config fields whose option is not simply the field's name with dashes.
OPTIONS = {"rate_qps": "--rate", "duration_s": "--duration", "slo_p99_s": "--slo-p99",
           "warmup_s": "--warmup", "load_duration_s": "--load-duration",
           "kill_duration_s": "--kill-duration", "phase_warmup_s": "--phase-warmup",
           "mechanisms": "--only"}
STACKS_HELP = ("comma-separated: stack names, stack.yaml paths, or NAME=URL for an endpoint "
               "running elsewhere; the first is the baseline")
WORKLOAD_HELP = "a name under workloads/ or a .yaml path"
LOG_HINT = "; `harness log DIR` logs it to MLflow"


def option_name(field: str) -> str:
    return OPTIONS.get(field, "--" + field.replace("_", "-"))


def make_config(model: type[Config], **fields: Any) -> Config:
    """The command's config; input it refuses is a UsageError naming the option."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = option_name(str(first["loc"][0])) + ": " if first["loc"] else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        got = f" (got {first['input']!r})" if first["loc"] else ""
        raise UsageError(f"{where}{message}{got}") from None


def stack_list(stacks: str) -> list[str]:
    return [name.strip() for name in stacks.split(",") if name.strip()]


def show(table: ReportTable | None) -> None:
    if table is not None:
        Console().print(table.rich())


def warn(line: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {line}", highlight=False, soft_wrap=True)


def report(summary_path: Path, tables: list[ReportTable | None], warnings: list[str],
           lines: Sequence[str] = ()) -> None:
    """What a finished measurement prints: its tables, warnings and verdicts, where its summary
    is; then it is logged to MLflow."""
    for table in tables:
        show(table)
    for line in warnings:
        warn(line)
    for line in lines:
        typer.echo(line)
    typer.echo(f"summary: {summary_path}")
    track(summary_path.parent)


def track(results: Path, on_dashboard: bool = True) -> None:
    """Log a finished run to MLflow; a store that fails costs one warning, never the run."""
    try:
        parent = log_saved(results)
    except TrackingError as exc:
        warn(f"{exc}; the results are safe in {results}; log them later with "
             f"`harness log {results}`")
        return
    shown = " (`harness dashboard` shows it)" if on_dashboard else ""
    typer.echo(f"mlflow: run {parent} in {tracking_uri()}{shown}")


def say_error(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), f" {message}"), highlight=False, soft_wrap=True)


