"""The `harness` command line: thin shells over library functions.

Each command parses, builds a config, calls one library function and says where things went.
`main` is the entry point: every error a user can fix (a bad option, a bad spec, a stack that
would not start: `harness.errors`, `stacks.errors`, and Click's own usage errors) is printed as
one line and exits with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.text import Text
from typer.exceptions import TyperException

from harness.errors import HarnessError, TrackingError, UsageError
from harness.experiments.capacity.experiment import CapacityConfig, run_capacity
from harness.experiments.quality import QualityConfig, run_quality
from harness.experiments.run import RunConfig, run_experiment
from harness.experiments.smoke import smoke
from harness.report.capacity_tables import (
    capacity_ablation_table,
    capacity_table,
    capacity_verdicts,
    capacity_warnings,
)
from harness.report.dashboard_server import HOST, start_dashboard
from harness.report.log_folder import log_saved
from harness.report.progress import CapacityProgress, QualityProgress, RunProgress, StartProgress
from harness.report.reliability_tables import failures_table, faults_table, reliability_table
from harness.report.results import CapacitySummary, ComparisonSummary, QualityResult, read_result
from harness.report.tables import (
    ReportTable,
    ablation_table,
    comparison_table,
    late_sender_warnings,
    quality_table,
    quantization_table,
)
from harness.report.tracking import tracking_uri
from harness.signals import interrupt_keeps, stop_signals_interrupt
from harness.workload.schedule import build_schedule, load_tokenizer
from harness.workload.spec import load_workload_spec
from stacks.errors import StackError
from stacks.launcher import Stack
from stacks.models.prepare import (
    DEFAULT_MODEL_DIR,
    TinyModelConfig,
    build_tiny_model,
    quantize_checkpoint,
)
from stacks.spec import PROJECT_ROOT, StackSpec, load_local_stack_spec
from workloads.schedule import write_schedule

app = typer.Typer(help="Compare a DIY vLLM deployment with an optimized serving stack.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
model_app = typer.Typer(help="The embedded model.", no_args_is_help=True)
app.add_typer(model_app, name="model")
err = Console(stderr=True)
Config = TypeVar("Config", bound=BaseModel)
# Config fields whose option is not simply the field's name with dashes.
OPTIONS = {"rate_qps": "--rate", "duration_s": "--duration", "slo_p99_s": "--slo-p99",
           "warmup_s": "--warmup"}
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


@app.command()
def up(
    stack: Annotated[str, typer.Argument(help="a name under stacks/ or a path to a stack.yaml")],
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="balancer port")] = None,
    replicas: Annotated[int | None, typer.Option(min=1, help="override the replica count")] = None,
    log_dir: Annotated[Path | None, typer.Option(help="where replica logs go")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="send one completion and one streamed chat, print them, take it down",
    )] = False,
) -> None:
    """Bring a stack up, print its endpoint, and keep it up until Ctrl-C or SIGTERM."""
    with stop_signals_interrupt():
        spec = load_local_stack_spec(stack)
        if replicas is not None:
            spec = StackSpec.model_validate({**spec.model_dump(), "replicas": replicas})
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        running = Stack(spec, log_dir or PROJECT_ROOT / "logs" / f"{spec.name}-{stamp}",
                        port=port)
        try:
            with StartProgress(spec.name) as progress:
                running.start(progress)
            typer.echo(f"endpoint: {running.endpoint}")
            err.print(f"admin: {running.admin_url} (loopback only: add, drain or remove "
                      "replicas; see docs/balancer.md)", highlight=False)
            if once:
                for answer in smoke(running.endpoint, running.served_model):
                    streamed = f", {answer.events} events streamed" if answer.events else ""
                    err.print(f"{answer.path} via {answer.upstream}{streamed}: "
                              f"{answer.text!r}", highlight=False)
                return
            running.hold(lambda line: warn(f"{spec.name}/{line}"))
        except KeyboardInterrupt:
            err.print(f"{spec.name}: stopping")
        finally:
            running.stop()


@app.command()
def run(
    stacks: Annotated[str, typer.Option(help=STACKS_HELP)] = "diy,optimized",
    workload: Annotated[str, typer.Option(help=WORKLOAD_HELP)] = "writing_assistant",
    rate: Annotated[float | None, typer.Option(help="steady QPS (replaces stages)")] = None,
    duration: Annotated[float | None, typer.Option(help="measured seconds")] = None,
    trials: Annotated[int, typer.Option(help="trials per stack, interleaved A B A B")] = 1,
    workers: Annotated[int, typer.Option(help="Locust workers (0: one process)")] = 0,
    out: Annotated[Path | None, typer.Option(help="results folder (new or empty)")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment to log to (default: the workload's name)")] = None,
    ablate: Annotated[bool, typer.Option(
        "--ablate", help="also run the last stack with each of its optimizations turned off, "
                         "one at a time, and show what each contributes")] = False,
    scenario: Annotated[str | None, typer.Option(
        help="faults to play during every trial: a name under workloads/scenarios/ "
             "(replica_kill, replica_hang, replica_slow, overload) or a YAML path")] = None,
) -> None:
    """Replay one schedule against each stack in turn and compare them side by side."""
    config = make_config(RunConfig, stacks=stack_list(stacks), workload=workload,
                         rate_qps=rate, duration_s=duration, trials=trials, workers=workers,
                         out=out, experiment=experiment, ablate=ablate, scenario=scenario)
    with stop_signals_interrupt(), interrupt_keeps("run", LOG_HINT), RunProgress(err) as progress:
        summary_path = run_experiment(config, progress)
    summary = read_result(summary_path, ComparisonSummary)
    report(summary_path, [comparison_table(summary), ablation_table(summary),
                          reliability_table(summary), faults_table(summary),
                          failures_table(summary)], late_sender_warnings(summary))


@app.command()
def capacity(
    stacks: Annotated[str, typer.Option(help=STACKS_HELP)] = "diy,optimized",
    slo_p99: Annotated[float, typer.Option(
        help="a rate passes when P99 end to end (from scheduled send) is at most this, in "
             "seconds")] = 1.0,
    min_success: Annotated[float, typer.Option(
        help="... and this fraction of its requests succeed")] = 0.9999,
    trials: Annotated[int, typer.Option(
        help="searches per stack, interleaved A B A B; 2 or more give intervals")] = 3,
    workload: Annotated[str, typer.Option(help=WORKLOAD_HELP)] = "writing_assistant",
    duration: Annotated[float, typer.Option(help="measured seconds per probe")] = 20.0,
    warmup: Annotated[float | None, typer.Option(
        help="warm-up seconds per probe (default: the workload's)")] = None,
    start_qps: Annotated[float, typer.Option(help="the first rate probed")] = 2.0,
    min_qps: Annotated[float | None, typer.Option(
        help="if the first rate fails, rates go down to this before the stack is said to "
             "have no capacity (default: start ÷ growth²)")] = None,
    growth: Annotated[float, typer.Option(help="rate multiplier of the exponential phase")]
    = 2.0,
    tolerance: Annotated[float, typer.Option(
        help="bisect until the bracket is this narrow (relative)")] = 0.05,
    max_qps: Annotated[float, typer.Option(help="never probe above this")] = 100_000.0,
    max_probes: Annotated[int, typer.Option(help="probes per search at most")] = 20,
    workers: Annotated[int, typer.Option(help="Locust workers (0: one process)")] = 0,
    out: Annotated[Path | None, typer.Option(help="results folder (new or empty)")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment to log to (default: the workload's name)")] = None,
    ablate: Annotated[bool, typer.Option(
        "--ablate", help="also search the last stack with each of its optimizations turned "
                         "off, one at a time, and show what each contributes to capacity")]
    = False,
) -> None:
    """Find each stack's highest sustained QPS within the SLO (exponential probe, then
    bisection) and the ratio between stacks, with confidence intervals over the trials."""
    config = make_config(
        CapacityConfig, stacks=stack_list(stacks), workload=workload, slo_p99_s=slo_p99,
        min_success=min_success, trials=trials, duration_s=duration, warmup_s=warmup,
        start_qps=start_qps, min_qps=min_qps, growth=growth, tolerance=tolerance,
        max_qps=max_qps, max_probes=max_probes, workers=workers, out=out,
        experiment=experiment, ablate=ablate)
    with stop_signals_interrupt(), interrupt_keeps("capacity search", LOG_HINT), \
            CapacityProgress(err) as progress:
        summary_path = run_capacity(config, progress)
    summary = read_result(summary_path, CapacitySummary)
    report(summary_path, [capacity_table(summary), capacity_ablation_table(summary)],
           capacity_warnings(summary), [f"ratio: {line}" for line in capacity_verdicts(summary)])
    typer.echo(f"dashboard: `make dashboard` (or `.venv/bin/harness dashboard`), then open "
               f"http://{HOST}:8501 and pick run {summary_path.parent.name}")


@app.command()
def quality(
    stacks: Annotated[str, typer.Option(help=STACKS_HELP)] = "diy,optimized",
    prompts: Annotated[int, typer.Option(help="prompts sent to every stack")] = 32,
    max_tokens: Annotated[int, typer.Option(help="greedy tokens per answer")] = 32,
    min_agreement: Annotated[float, typer.Option(
        help="PASS needs at least this token agreement (1.0: zero regression)")] = 1.0,
    max_logprob_diff: Annotated[float | None, typer.Option(
        help="PASS also needs |Δ log p| of agreeing tokens at most this")] = None,
    workload: Annotated[str, typer.Option(help="whose prompts to use")] = "writing_assistant",
    out: Annotated[Path | None, typer.Option(help="results folder (new or empty)")] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment")] = None,
) -> None:
    """Send the same greedy prompts to each stack and say whether the others answer like the
    baseline (exit status 1 when they do not)."""
    config = make_config(
        QualityConfig, stacks=stack_list(stacks), workload=workload, prompts=prompts,
        max_tokens=max_tokens, min_agreement=min_agreement,
        max_logprob_diff=math.inf if max_logprob_diff is None else max_logprob_diff,
        out=out, experiment=experiment)
    with stop_signals_interrupt(), interrupt_keeps("quality check", LOG_HINT), \
            QualityProgress(err) as progress:
        path = run_quality(config, progress)
    result = read_result(path, QualityResult)
    show(quality_table(result))
    typer.echo(f"quality: {path}")
    track(path.parent, on_dashboard=False)
    failed = [comparison.stack for comparison in result.comparisons if not comparison.passed]
    typer.echo(f"verdict: {'FAIL' if failed else 'PASS'}"
               + (f" ({', '.join(failed)} below the bar)" if failed else ""))
    if failed:
        raise typer.Exit(1)


@app.command("log")
def log_command(
    results: Annotated[Path, typer.Argument(
        help="a results folder written by `harness run`, `capacity` or `quality`")],
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment (default: the one the run named)")] = None,
) -> None:
    """Log a saved run to MLflow (again is harmless: a run already logged is not duplicated)."""
    typer.echo(f"mlflow: run {log_saved(results, experiment)} in {tracking_uri()}")


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1")] = 8501,
) -> None:
    """Open the comparison dashboard (Streamlit) over the MLflow store; Ctrl-C stops it."""
    with stop_signals_interrupt():
        process = start_dashboard(port)
        typer.echo(f"dashboard: http://{HOST}:{port} (store: {tracking_uri()})")
        try:
            code = process.wait()
        except KeyboardInterrupt:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            return
        if code:
            raise typer.Exit(code)


@app.command()
def schedule(
    workload: Annotated[str, typer.Argument(help=WORKLOAD_HELP)],
    out: Annotated[Path, typer.Option(help="schedule file to write")],
    rate: Annotated[float | None, typer.Option(min=0.001, help="steady QPS")] = None,
    duration: Annotated[float | None, typer.Option(min=0.001, help="measured seconds")] = None,
) -> None:
    """Write a workload's schedule, for replaying with plain `locust -f`."""
    spec = load_workload_spec(workload).with_overrides(rate, duration)
    built = build_schedule(spec, load_tokenizer(spec.tokenizer_path()))
    digest = write_schedule(built, out)
    typer.echo(f"schedule: {out} ({len(built.entries)} requests, sha256 {digest})")


@model_app.command("build")
def model_build(
    out: Annotated[Path, typer.Option(help="model directory to write")] = DEFAULT_MODEL_DIR,
    seed: Annotated[int, typer.Option(help="seed for corpus, tokenizer and weights")] = 0,
) -> None:
    """Build the embedded tiny Llama model (deterministic: same seed, same bytes)."""
    typer.echo(f"model: {build_tiny_model(out, TinyModelConfig(seed=seed))}")


@model_app.command("quantize")
def model_quantize(
    source: Annotated[Path, typer.Argument(help="a Hugging Face model directory")],
    out: Annotated[Path, typer.Option(help="directory for the quantized checkpoint")],
    scheme: Annotated[str, typer.Option(
        help="fp8 (H100-class GPUs), int8 (CPUs) or auto (picks by this machine)")] = "auto",
    granularity: Annotated[str, typer.Option(
        help="weight scales per output channel or per tensor")] = "channel",
) -> None:
    """Write a W8A8 compressed-tensors checkpoint vLLM serves as it is, and show each layer's
    weight error with per-channel and per-tensor scales."""
    if granularity not in ("channel", "tensor"):
        raise UsageError(f"--granularity: must be channel or tensor (got {granularity!r})")
    report = quantize_checkpoint(source, out, scheme,
                                 "channel" if granularity == "channel" else "tensor")
    show(quantization_table(report))
    typer.echo(f"model: {out} ({report.scheme}, per-{report.granularity} weight scales)")


def say_error(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), f" {message}"), highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (errors the user can fix: 2, one line)."""
    try:
        result = app(args=list(argv) if argv is not None else None, prog_name="harness",
                     standalone_mode=False)
    except typer.Abort:
        return 130
    except TyperException as exc:  # Click's usage errors, as Typer raises them
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command: its help, as Click does
            err.print(exc.format_message(), highlight=False, markup=False)
        else:
            where = ctx.command_path if ctx is not None else "harness"
            say_error(f"{where}: {exc.format_message()}")
        return int(getattr(exc, "exit_code", 2))
    except (HarnessError, StackError) as exc:
        say_error(str(exc))
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
