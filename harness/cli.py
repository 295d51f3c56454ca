"""The `harness` command line: thin shells over library functions.

Each command parses, builds a config, calls one library function and says where things went.
`main` is the entry point: every error a user can fix (a bad option, a bad spec, a stack that
would not start: `harness.errors`, `stacks.errors`, and Click's own usage errors) is printed as
one line and exits with status 2; Ctrl-C exits with 130. How options become a config and a
finished measurement is reported: `harness.cli_output`.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import TyperException

from harness.cli_deploy import deploy_app
from harness.cli_images import coldstart, image_app, with_overrides
from harness.cli_mechanisms import mechanisms
from harness.cli_output import (
    LOG_HINT,
    STACKS_HELP,
    WORKLOAD_HELP,
    err,
    make_config,
    report,
    say_error,
    show,
    stack_list,
    track,
    warn,
)
from harness.cli_project import project
from harness.cli_run import run
from harness.errors import HarnessError, UsageError
from harness.experiments.capacity.experiment import CapacityConfig, run_capacity
from harness.experiments.quality import QualityConfig, run_quality
from harness.experiments.scorecard import ScorecardConfig, run_scorecard
from harness.experiments.smoke import smoke
from harness.report.capacity_tables import (
    capacity_ablation_table,
    capacity_table,
    capacity_verdicts,
    capacity_warnings,
)
from harness.report.dashboard_server import HOST, start_dashboard
from harness.report.log_folder import log_saved
from harness.report.progress import (
    CapacityProgress,
    QualityProgress,
    ScorecardProgress,
    StartProgress,
)
from harness.report.results import CapacitySummary, QualityResult, read_result
from harness.report.scorecard_results import Scorecard
from harness.report.scorecard_tables import scorecard_lines, scorecard_table, scorecard_warnings
from harness.report.tables import (
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
from stacks.spec import PROJECT_ROOT, load_local_stack_spec
from workloads.schedule import write_schedule

app = typer.Typer(help="Compare a DIY vLLM deployment with an optimized serving stack.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
model_app = typer.Typer(help="The embedded model.", no_args_is_help=True)
app.add_typer(model_app, name="model")
app.add_typer(image_app, name="image")
app.add_typer(deploy_app, name="deploy")
@app.command()
def up(
    stack: Annotated[str, typer.Argument(help="a name under stacks/ or a path to a stack.yaml")],
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="balancer port")] = None,
    replicas: Annotated[int | None, typer.Option(min=1, help="override the replica count")] = None,
    image: Annotated[str | None, typer.Option(
        help="override where replicas run from: none (this machine), eager or lazy")] = None,
    log_dir: Annotated[Path | None, typer.Option(help="where replica logs go")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="send one completion and one streamed chat, print them, take it down",
    )] = False,
) -> None:
    """Bring a stack up, print its endpoint, and keep it up until Ctrl-C or SIGTERM."""
    with stop_signals_interrupt():
        spec = load_local_stack_spec(stack)
        spec = with_overrides(spec, replicas, image)
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


app.command()(run)
app.command()(project)


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
def scorecard(
    stacks: Annotated[str, typer.Option(help=STACKS_HELP)] = "diy,optimized",
    trials: Annotated[int, typer.Option(
        help="starts per stack, interleaved A B A B; each serves every phase")] = 4,
    workload: Annotated[str, typer.Option(help=WORKLOAD_HELP)] = "writing_assistant",
    slo_p99: Annotated[float, typer.Option(help="the P99 target, seconds")] = 1.0,
    load_qps: Annotated[float, typer.Option(help="the fixed load P99 is taken at")] = 64.0,
    load_duration: Annotated[float, typer.Option(
        help="measured seconds of the fixed load, per trial")] = 15.0,
    kill_qps: Annotated[float, typer.Option(help="the load a replica is killed at")] = 2.0,
    kill_duration: Annotated[float, typer.Option(
        help="measured seconds of the kill phase, per trial")] = 30.0,
    kill_trials: Annotated[int, typer.Option(
        help="the kill phase runs in the first this many trials (0: none)")] = 1,
    kill_scenario: Annotated[str, typer.Option(
        help="the faults of the kill phase: a name under workloads/scenarios/ or a YAML "
             "path")] = "replica_kill",
    cold_trials: Annotated[int, typer.Option(
        help="each stack starts cold (its image not on this machine) in the first N")] = 2,
    spike_trials: Annotated[int, typer.Option(
        help="the spike phase runs in the last this many trials (0: none)")] = 1,
    spike_scenario: Annotated[str, typer.Option(
        help="the spike's load shape: a name under workloads/scenarios/ or a YAML path")]
    = "spike_short",
    phase_warmup: Annotated[float, typer.Option(
        help="unmeasured seconds before each phase's window")] = 5.0,
    duration: Annotated[float, typer.Option(help="measured seconds per capacity probe")]
    = 8.0,
    warmup: Annotated[float, typer.Option(help="warm-up seconds per capacity probe")] = 2.0,
    start_qps: Annotated[float, typer.Option(
        help="the first search's first rate (later ones start from the last capacity)")]
    = 64.0,
    tolerance: Annotated[float, typer.Option(
        help="bisect until the bracket is this narrow (relative)")] = 0.05,
    workers: Annotated[int, typer.Option(help="Locust workers (0: one process)")] = 0,
    out: Annotated[Path | None, typer.Option(help="results folder (new or empty)")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment to log to (default: the workload's name)")] = None,
) -> None:
    """One side-by-side of every dimension measured: capacity at the SLO, P99 at a fixed load,
    success under a replica kill, cold start, and a spike (SLO-violating seconds and
    replica-seconds, each stack scaled as its spec says), each with its 95 % interval and
    verdict. Every trial serves its phases on one start of each stack."""
    config = make_config(
        ScorecardConfig, stacks=stack_list(stacks), workload=workload, slo_p99_s=slo_p99,
        trials=trials, duration_s=duration, warmup_s=warmup, start_qps=start_qps,
        tolerance=tolerance, load_qps=load_qps, load_duration_s=load_duration,
        kill_qps=kill_qps, kill_duration_s=kill_duration, kill_trials=kill_trials,
        kill_scenario=kill_scenario, phase_warmup_s=phase_warmup, workers=workers, out=out,
        experiment=experiment, cold_trials=cold_trials, spike_trials=spike_trials,
        spike_scenario=spike_scenario)
    with stop_signals_interrupt(), interrupt_keeps("scorecard", LOG_HINT), \
            ScorecardProgress(err) as progress:
        path = run_scorecard(config, progress)
    card = read_result(path, Scorecard)
    summary = read_result(path.parent / "summary.json", CapacitySummary)
    report(path, [scorecard_table(card), capacity_table(summary)],
           capacity_warnings(summary) + scorecard_warnings(card), scorecard_lines(card))
    typer.echo(f"dashboard: `make dashboard` (or `.venv/bin/harness dashboard`) opens on this "
               f"scorecard at http://{HOST}:8501")


app.command()(mechanisms)
app.command()(coldstart)


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
