"""`harness image build|push` and `harness coldstart`: the image commands' shells (registered by
`harness.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli_output import err, make_config, report, stack_list
from harness.errors import UsageError
from harness.experiments.coldstart import ColdStartConfig, run_coldstart
from harness.report.coldstart_results import ColdStartResult
from harness.report.coldstart_tables import coldstart_ratio_table, coldstart_table
from harness.report.results import read_result
from harness.signals import stop_signals_interrupt
from stacks.images.build import build_image, built_dir
from stacks.images.registry import DEFAULT_BANDWIDTH_MBPS, DEFAULT_LATENCY_MS, push
from stacks.images.serve import REGISTRY_DIR
from stacks.spec import StackSpec, load_local_stack_spec

image_app = typer.Typer(help="Replica images: build them, push them to the local registry.",
                        no_args_is_help=True)

STACK_ARG = typer.Argument(help="a name under stacks/ or a path to a stack.yaml")


def with_overrides(spec: StackSpec, replicas: int | None, image: str | None) -> StackSpec:
    """`harness up`'s spec with its --replicas and --image options applied."""
    overrides: dict[str, object] = {}
    if replicas is not None:
        overrides["replicas"] = replicas
    if image is not None:
        if image not in ("none", "eager", "lazy"):
            raise UsageError(f"--image: must be none, eager or lazy (got {image!r})")
        overrides["image"] = {"mode": image}
    return StackSpec.model_validate({**spec.model_dump(), **overrides})


@image_app.command("build")
def image_build(
    stack: Annotated[str, STACK_ARG],
    trace: Annotated[bool, typer.Option(
        help="start one replica from this machine first and leave out the engine's "
             "requirements it never loads")] = True,
    force: Annotated[bool, typer.Option(help="build even if the image is up to date")] = False,
) -> None:
    """Pack what one replica runs (interpreter, engine, model) into one squashfs image named
    by its sha256 digest; then push it to the local registry."""
    spec = load_local_stack_spec(stack)
    manifest = build_image(spec, lambda line: err.print(line, highlight=False), trace, force)
    push(built_dir(spec.name) / "manifest.json", REGISTRY_DIR)
    typer.echo(f"image: {built_dir(spec.name) / manifest.blob_file} ({manifest.size / 1e6:.0f} "
               f"MB, {manifest.digest}); pushed to {REGISTRY_DIR}")


@image_app.command("push")
def image_push(stack: Annotated[str, STACK_ARG]) -> None:
    """Put the stack's built image and its manifest into the local registry."""
    spec = load_local_stack_spec(stack)
    manifest = push(built_dir(spec.name) / "manifest.json", REGISTRY_DIR)
    typer.echo(f"pushed: {manifest.name}@{manifest.digest} to {REGISTRY_DIR}")


def coldstart(
    stacks: Annotated[str, typer.Option(
        help="comma-separated stacks with an image mode, or NAME:MODE to start one stack "
             "eager, lazy, lazy-noprefetch or lazy-fuse")] = "diy,optimized",
    trials: Annotated[int, typer.Option(min=1, help="cold and warm starts per stack")] = 3,
    bandwidth_mbps: Annotated[float, typer.Option(
        help="the registry's bandwidth per connection, Mbit/s")] = DEFAULT_BANDWIDTH_MBPS,
    latency_ms: Annotated[float, typer.Option(
        help="the registry's added latency per request, ms")] = DEFAULT_LATENCY_MS,
    out: Annotated[Path | None, typer.Option(help="results folder (new or empty)")] = None,
    experiment: Annotated[str | None, typer.Option(
        help="MLflow experiment to log to")] = "coldstart",
) -> None:
    """Start one replica of each stack from its image, cold and then warm, and time each
    phase: image fetch or mount, engine start to /health, first completion; with the bytes
    fetched from the registry. Prints the phases and the eager ÷ lazy ratios."""
    config = make_config(ColdStartConfig, stacks=stack_list(stacks), trials=trials,
                         bandwidth_mbps=bandwidth_mbps, latency_ms=latency_ms, out=out,
                         experiment=experiment)
    with stop_signals_interrupt():
        path = run_coldstart(config, lambda line: err.print(line, highlight=False))
    result = read_result(path, ColdStartResult)
    report(path, [coldstart_table(result), coldstart_ratio_table(result)], [], result.notes)
