"""`harness deploy k8s STACK --out DIR`: a stack's Kubernetes manifests from its spec
(registered by `harness.cli`; the objects are built in `stacks.kubernetes`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from harness.cli_output import err
from harness.errors import UsageError
from stacks.kubernetes.loadgen import LoadOptions
from stacks.kubernetes.manifests import stack_manifests, write_manifests
from stacks.kubernetes.objects import DeployOptions
from stacks.spec import describe_validation_error, load_local_stack_spec, resolve_stack_path

deploy_app = typer.Typer(help="Deployment files for a stack, generated from its spec.",
                         no_args_is_help=True)
DEFAULTS = DeployOptions()


@deploy_app.command("k8s")
def deploy_k8s(
    stack: Annotated[str, typer.Argument(help="a name under stacks/ or a path to a stack.yaml")],
    out: Annotated[Path, typer.Option(help="directory for the manifests (new, empty, or "
                                           "generated here before)")],
    engine_image: Annotated[str, typer.Option(help="the replicas' vLLM image")] =
        DEFAULTS.engine_image,
    project_image: Annotated[str, typer.Option(help="this project's image: the balancer and "
                                               "the load generator")] = DEFAULTS.project_image,
    namespace: Annotated[str | None, typer.Option(help="namespace of every object")] = None,
    gpus: Annotated[int, typer.Option(help="GPUs per replica")] = DEFAULTS.gpus_per_replica,
    models_claim: Annotated[str, typer.Option(help="volume claim holding the model "
                                              "directories")] = DEFAULTS.models_claim,
    schedule: Annotated[Path | None, typer.Option(help="also a Locust master and workers "
                                                  "replaying this schedule file")] = None,
    workers: Annotated[int, typer.Option(help="Locust workers, with --schedule")] = 4,
    schedule_claim: Annotated[str | None, typer.Option(help="volume claim holding "
                                                       "schedule.jsonl (over 1 MiB)")] = None,
) -> None:
    """Write the replica Deployment, its headless Service, a PodDisruptionBudget, the
    balancer's Deployment and Service, and for a scaling stack its HPA (docs/deploy.md)."""
    spec = load_local_stack_spec(stack)
    try:
        options = DeployOptions(engine_image=engine_image, project_image=project_image,
                                namespace=namespace, gpus_per_replica=gpus,
                                models_claim=models_claim)
        load = None
        if schedule is not None or schedule_claim is not None:
            load = LoadOptions(schedule=schedule or Path("schedule.jsonl"), workers=workers,
                               schedule_claim=schedule_claim)
    except ValidationError as exc:
        raise UsageError(f"harness deploy k8s: {describe_validation_error(exc)}") from None
    written = write_manifests(spec, resolve_stack_path(stack),
                              stack_manifests(spec, options, load), out)
    for path in written:
        err.print(f"wrote {path}", highlight=False)
