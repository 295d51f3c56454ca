"""The `harness` command line: thin shells over library functions.

Each command parses, builds a config, calls one library function and says where things went.
Errors the user can fix are printed as one line and exit with status 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness.errors import HarnessError
from harness.model import DEFAULT_MODEL_DIR, TinyModelConfig, build_tiny_model
from harness.probe import probe
from harness.progress import StartProgress
from harness.serve import default_log_dir, ensure_model, hold, stop_signals_interrupt
from stacks.errors import StackError
from stacks.launcher import Stack
from stacks.spec import StackSpec, load_stack_spec

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
        spec = load_stack_spec(stack)
        if replicas is not None:
            spec = StackSpec.model_validate({**spec.model_dump(), "replicas": replicas})
        ensure_model(spec)
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


@model_app.command("build")
def model_build(
    out: Annotated[Path, typer.Option(help="model directory to write")] = DEFAULT_MODEL_DIR,
    seed: Annotated[int, typer.Option(help="seed for corpus, tokenizer and weights")] = 0,
) -> None:
    """Build the embedded tiny Llama model (deterministic: same seed, same bytes)."""
    path = build_tiny_model(out, TinyModelConfig(seed=seed))
    typer.echo(f"model: {path}")


if __name__ == "__main__":
    app()
