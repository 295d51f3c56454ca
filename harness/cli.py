"""The `harness` command line: thin shells over library functions.

Each command parses, builds a config, calls one library function and says where things went.
Errors the user can fix are printed as one line and exit with status 2.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from harness.capacity_run import CapacityConfig, run_capacity
from harness.capacity_tracking import log_saved
from harness.dashboard_server import HOST, start_dashboard
from harness.errors import HarnessError
from harness.model import DEFAULT_MODEL_DIR, TinyModelConfig, build_tiny_model
from harness.probe import probe
from harness.progress import CapacityProgress, QualityProgress, RunProgress, StartProgress
from harness.quality import QualityConfig
from harness.quality_run import run_quality
from harness.quantize import quantize_checkpoint
from harness.report import (
    ablation_table,
    capacity_ablation_table,
    capacity_table,
    capacity_verdicts,
    capacity_warnings,
    comparison_table,
    late_sender_warnings,
    quality_table,
    quantization_table,
)
from harness.run import RunConfig, run_experiment
from harness.schedule import build_schedule, load_tokenizer, write_schedule
from harness.serve import default_log_dir, ensure_model, hold, stop_signals_interrupt
from harness.tracking import TrackingError, log_quality, tracking_uri
from harness.workload import load_workload_spec
from stacks.errors import StackError
from stacks.launcher import Stack
from stacks.spec import StackSpec, describe_validation_error, load_local_stack_spec

app = typer.Typer(help="Compare a DIY vLLM deployment with an optimized serving stack.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
model_app = typer.Typer(help="The embedded model.", no_args_is_help=True)
app.add_typer(model_app, name="model")
err = Console(stderr=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Known errors become one red line and exit status 2; nothing else is swallowed."""
    try:
        yield
    except (StackError, HarnessError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(2) from None


@contextmanager
def interrupt_keeps(what: str, unit: str) -> Iterator[None]:
    """Ctrl-C ends a measurement with status 130, saying what it kept and how to log it."""
    try:
        yield
    except KeyboardInterrupt:
        err.print(f"{what} interrupted; every finished {unit} is kept in its results folder; "
                  "`harness log DIR` logs it to MLflow")
        raise typer.Exit(130) from None


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
    with user_errors(), stop_signals_interrupt():
        spec = load_local_stack_spec(stack)
        if replicas is not None:
            spec = StackSpec.model_validate({**spec.model_dump(), "replicas": replicas})
        spec = ensure_model(spec)
        logs = log_dir or default_log_dir(spec.name)
        running = Stack(spec, logs, port=port)
        try:
            with StartProgress(spec.name) as progress:
                running.start(progress)
            typer.echo(f"endpoint: {running.endpoint}")
            if once:
                show_probe(running.endpoint, spec.engine.served_model_name or spec.engine.model)
                return
            hold(running, lambda replica, code: err.print(
                f"[yellow]warning:[/yellow] {spec.name}/{replica.name} exited with code {code}; "
                f"see {replica.log_path}"))
        except KeyboardInterrupt:
            err.print(f"{spec.name}: stopping")
        finally:
            running.stop()


def show_probe(endpoint: str, model: str) -> None:
    for answer in probe(endpoint, model):
        streamed = f", {answer.events} events streamed" if answer.events else ""
        err.print(f"{answer.path} via {answer.upstream}{streamed}: {answer.text!r}",
                  highlight=False)


@app.command()
def run(
    stacks: Annotated[str, typer.Option(
        help="comma-separated: stack names, stack.yaml paths, or NAME=URL for an endpoint "
             "running elsewhere; the first is the baseline of the ratios")] = "diy,optimized",
    workload: Annotated[str, typer.Option(help="a name under workloads/ or a .yaml path")] = (
        "writing_assistant"),
    rate: Annotated[float | None, typer.Option(min=0.001, help="steady QPS (replaces stages)")]
    = None,
    duration: Annotated[float | None, typer.Option(min=0.001, help="measured seconds")] = None,
    trials: Annotated[int, typer.Option(min=1, help="trials per stack, interleaved A B A B")] = 1,
    workers: Annotated[int, typer.Option(min=0, help="Locust workers (0: one process)")] = 0,
    out: Annotated[Path | None, typer.Option(help="results folder (new or empty)")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment to log to (default: the workload's name)")] = None,
    ablate: Annotated[bool, typer.Option(
        "--ablate", help="also run the last stack with each of its optimizations turned off, "
                         "one at a time, and show what each contributes")] = False,
) -> None:
    """Replay one schedule against each stack in turn and compare them side by side."""
    with user_errors(), stop_signals_interrupt():
        config = RunConfig(stacks=[name.strip() for name in stacks.split(",") if name.strip()],
                           workload=workload, rate_qps=rate, duration_s=duration,
                           trials=trials, workers=workers, out=out, experiment=experiment,
                           ablate=ablate)
        with interrupt_keeps("run", "trial"), RunProgress(err) as progress:
            summary_path = run_experiment(config, progress)
        summary = json.loads(summary_path.read_text())
        Console().print(comparison_table(summary))
        if (shares := ablation_table(summary)) is not None:
            Console().print(shares)
        for line in late_sender_warnings(summary):
            err.print(f"[yellow]warning:[/yellow] {line}", highlight=False)
        typer.echo(f"summary: {summary_path}")
        track(summary_path.parent)


def track(results: Path) -> None:
    """Log a finished run to MLflow; a store that fails costs one warning, never the run."""
    try:
        parent = log_saved(results)
    except TrackingError as exc:
        err.print(f"[yellow]warning:[/yellow] {exc}; the results are safe in {results}; log "
                  f"them later with `harness log {results}`", highlight=False, soft_wrap=True)
        return
    typer.echo(f"mlflow: run {parent} in {tracking_uri()} (`harness dashboard` shows it)")


@app.command()
def capacity(
    stacks: Annotated[str, typer.Option(
        help="comma-separated: stack names, stack.yaml paths or NAME=URL; the first is the "
             "baseline of the ratio")] = "diy,optimized",
    slo_p99: Annotated[float, typer.Option(
        min=0.001, help="a rate passes when P99 end to end (from scheduled send) is at most "
                        "this, in seconds")] = 1.0,
    min_success: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="... and this fraction of its requests succeed")] = 0.9999,
    trials: Annotated[int, typer.Option(
        min=1, help="searches per stack, interleaved A B A B; 2 or more give intervals")] = 3,
    workload: Annotated[str, typer.Option(help="a name under workloads/ or a .yaml path")] = (
        "writing_assistant"),
    duration: Annotated[float, typer.Option(min=0.001, help="measured seconds per probe")]
    = 20.0,
    warmup: Annotated[float | None, typer.Option(
        min=0.0, help="warm-up seconds per probe (default: the workload's)")] = None,
    start_qps: Annotated[float, typer.Option(min=0.001, help="the first rate probed")] = 2.0,
    min_qps: Annotated[float | None, typer.Option(
        min=0.001, help="if the first rate fails, rates go down to this before the stack is "
                        "said to have no capacity (default: start ÷ growth²)")] = None,
    growth: Annotated[float, typer.Option(
        min=1.01, help="rate multiplier of the exponential phase")] = 2.0,
    tolerance: Annotated[float, typer.Option(
        min=0.001, max=0.999, help="bisect until the bracket is this narrow (relative)")]
    = 0.05,
    max_qps: Annotated[float, typer.Option(min=0.001, help="never probe above this")]
    = 100_000.0,
    max_probes: Annotated[int, typer.Option(min=1, help="probes per search at most")] = 20,
    workers: Annotated[int, typer.Option(min=0, help="Locust workers (0: one process)")] = 0,
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
    with user_errors(), stop_signals_interrupt():
        try:
            config = CapacityConfig(
                stacks=[name.strip() for name in stacks.split(",") if name.strip()],
                workload=workload, slo_p99_s=slo_p99, min_success=min_success, trials=trials,
                duration_s=duration, warmup_s=warmup, start_qps=start_qps, min_qps=min_qps,
                growth=growth, tolerance=tolerance, max_qps=max_qps, max_probes=max_probes,
                workers=workers, out=out, experiment=experiment, ablate=ablate)
        except ValidationError as exc:
            raise HarnessError(f"capacity: {describe_validation_error(exc, CapacityConfig)}"
                               ) from None
        with (interrupt_keeps("capacity search", "search"),
              CapacityProgress(err) as progress):
            summary_path = run_capacity(config, progress)
        summary = json.loads(summary_path.read_text())
        Console().print(capacity_table(summary))
        if (shares := capacity_ablation_table(summary)) is not None:
            Console().print(shares)
        for line in capacity_warnings(summary):
            err.print(f"[yellow]warning:[/yellow] {line}", highlight=False)
        for line in capacity_verdicts(summary):
            typer.echo(f"ratio: {line}")
        typer.echo(f"summary: {summary_path}")
        track(summary_path.parent)
        typer.echo(f"dashboard: `make dashboard` (or `.venv/bin/harness dashboard`), then open "
                   f"http://{HOST}:8501 and pick run {summary_path.parent.name}")


@app.command()
def quality(
    stacks: Annotated[str, typer.Option(
        help="comma-separated stacks (names, spec paths or NAME=URL); the first is the "
             "baseline")] = "diy,optimized",
    prompts: Annotated[int, typer.Option(min=1, help="prompts sent to every stack")] = 32,
    max_tokens: Annotated[int, typer.Option(min=1, help="greedy tokens per answer")] = 32,
    min_agreement: Annotated[float, typer.Option(
        min=0, max=1, help="PASS needs at least this token agreement (1.0: zero "
                           "regression)")] = 1.0,
    max_logprob_diff: Annotated[float | None, typer.Option(
        min=0, help="PASS also needs |Δ log p| of agreeing tokens at most this")] = None,
    workload: Annotated[str, typer.Option(help="whose prompts to use")] = "writing_assistant",
    out: Annotated[Path | None, typer.Option(help="results folder (new or empty)")] = None,
    experiment: Annotated[str | None, typer.Option(help="MLflow experiment")] = None,
) -> None:
    """Send the same greedy prompts to each stack and say whether the others answer like the
    baseline (exit status 1 when they do not)."""
    with user_errors(), stop_signals_interrupt():
        config = QualityConfig(
            stacks=[name.strip() for name in stacks.split(",") if name.strip()],
            workload=workload, prompts=prompts, max_tokens=max_tokens,
            min_agreement=min_agreement,
            max_logprob_diff=math.inf if max_logprob_diff is None else max_logprob_diff,
            out=out, experiment=experiment)
        try:
            with QualityProgress(err) as progress:
                path = run_quality(config, progress)
        except KeyboardInterrupt:
            err.print("quality check interrupted")
            raise typer.Exit(130) from None
        result = json.loads(path.read_text())
        Console().print(quality_table(result))
        typer.echo(f"quality: {path}")
        try:
            typer.echo(f"mlflow: run {log_quality(path)} in {tracking_uri()}")
        except TrackingError as exc:
            err.print(f"[yellow]warning:[/yellow] {exc}", highlight=False, soft_wrap=True)
        failed = [c["stack"] for c in result["comparisons"] if not c["passed"]]
        typer.echo(f"verdict: {'FAIL' if failed else 'PASS'}"
                   + (f" ({', '.join(failed)} below the bar)" if failed else ""))
        if failed:
            raise typer.Exit(1)


@app.command("log")
def log_command(
    results: Annotated[Path, typer.Argument(
        help="a results folder written by `harness run` or `harness capacity`")],
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment (default: the one the run named, else its workload)")] = None,
) -> None:
    """Log a saved run to MLflow (again is harmless: a run already logged is not duplicated)."""
    with user_errors():
        parent = log_saved(results, experiment)
        typer.echo(f"mlflow: run {parent} in {tracking_uri()}")


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
    workload: Annotated[str, typer.Argument(help="a name under workloads/ or a .yaml path")],
    out: Annotated[Path, typer.Option(help="schedule file to write")],
    rate: Annotated[float | None, typer.Option(min=0.001, help="steady QPS")] = None,
    duration: Annotated[float | None, typer.Option(min=0.001, help="measured seconds")] = None,
) -> None:
    """Write a workload's schedule, for replaying with plain `locust -f`."""
    with user_errors():
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
    path = build_tiny_model(out, TinyModelConfig(seed=seed))
    typer.echo(f"model: {path}")


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
    with user_errors():
        if granularity not in ("channel", "tensor"):
            raise HarnessError(f"--granularity must be channel or tensor, got {granularity!r}")
        report = quantize_checkpoint(source, out, scheme,
                                     "channel" if granularity == "channel" else "tensor")
        Console().print(quantization_table(report))
        typer.echo(f"model: {out} ({report.scheme}, per-{report.granularity} weight scales)")


if __name__ == "__main__":
    app()
