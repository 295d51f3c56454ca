"""`harness mechanisms`: the command's shell (registered by `harness.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli_output import LOG_HINT, err, make_config, report
from harness.experiments.mechanism_plans import PLANS
from harness.experiments.mechanisms import MechanismsConfig, run_mechanisms
from harness.report.dashboard_server import HOST
from harness.report.mechanisms_results import Mechanisms
from harness.report.mechanisms_tables import mechanisms_lines, mechanisms_table
from harness.report.progress import RunProgress
from harness.report.results import read_result
from harness.signals import interrupt_keeps, stop_signals_interrupt


def mechanisms(
    only: Annotated[str, typer.Option(
        help=f"comma-separated, in this order: {', '.join(PLANS)}")] = ",".join(PLANS),
    baseline: Annotated[str, typer.Option(
        help="the stack each optimization is added to: a name under stacks/ or a path")]
    = "diy",
    source: Annotated[str, typer.Option(
        help="the stack whose setting of each optimization is added")] = "optimized",
    trials: Annotated[int, typer.Option(
        help="trials per variant, interleaved off/on; 3 or more give intervals")] = 3,
    load_fraction: Annotated[float, typer.Option(
        help="the P2C load, as a fraction of the round-robin stack's saturated throughput")]
    = 0.7,
    workers: Annotated[int, typer.Option(help="Locust workers (0: one process)")] = 0,
    out: Annotated[Path | None, typer.Option(help="results folder (new or empty)")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment to log to")] = "mechanisms",
) -> None:
    """Each optimization alone, where it binds: W8A8 on saturated decode, several API
    servers on one-token answers at high QPS, P2C with one replica at half speed. Prints each
    one's gain with its 95 % interval; the dashboard shows them as a waterfall."""
    names = [name.strip() for name in only.split(",") if name.strip()]
    config = make_config(MechanismsConfig, mechanisms=names, baseline=baseline, source=source,
                         trials=trials, load_fraction=load_fraction, workers=workers, out=out,
                         experiment=experiment)
    with stop_signals_interrupt(), interrupt_keeps("mechanisms", LOG_HINT), \
            RunProgress(err) as progress:
        path = run_mechanisms(config, progress)
    result = read_result(path, Mechanisms)
    report(path, [mechanisms_table(result)], [], mechanisms_lines(result))
    typer.echo(f"dashboard: `make dashboard` (or `.venv/bin/harness dashboard`), then open "
               f"http://{HOST}:8501 and pick run {path.parent.name}")
