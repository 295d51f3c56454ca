"""The stacks an experiment drives: loaded from their specs, and each either launched here (and
stopped on the way out) or an endpoint running elsewhere, checked to answer before anything
starts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.client import get_json
from harness.errors import EndpointError, UsageError
from stacks.launcher import Stack, StartObserver
from stacks.spec import EndpointSpec, StackSpec, load_stack_spec

Spec = StackSpec | EndpointSpec


@dataclass(frozen=True, slots=True)
class Target:
    """Where a stack answers, and what to ask for."""

    name: str
    endpoint: str
    model: str
    api_key_env: str
    stack: Stack | None = None  # launched here: its replicas, for a scenario's faults

    def headers(self) -> dict[str, str]:
        return auth_headers(self.name, self.api_key_env)


def load_stacks(names: list[str]) -> list[Spec]:
    """The stacks to drive. Endpoints are asked once, here, which model they serve (the load
    generator is told), so one that does not answer fails before anything starts."""
    specs = [load_stack_spec(name) for name in names]
    seen = [spec.name for spec in specs]
    if len(set(seen)) != len(seen):
        raise UsageError(f"--stacks: stack names must differ, got {', '.join(seen)}")
    return [spec.model_copy(update={"model": check_endpoint(spec)})
            if isinstance(spec, EndpointSpec) else spec for spec in specs]


def auth_headers(stack: str, api_key_env: str | None) -> dict[str, str]:
    """The bearer header for a stack whose key is in `api_key_env` (none without one)."""
    if not api_key_env:
        return {}
    if api_key_env not in os.environ:
        raise UsageError(f"stack {stack}: environment variable {api_key_env} (api_key_env) "
                         "is not set")
    return {"authorization": f"Bearer {os.environ[api_key_env]}"}


def check_endpoint(spec: EndpointSpec) -> str:
    """The model to ask an endpoint for (the spec's, or the first it lists); fails before any
    load if it does not answer /v1/models."""
    url = f"{spec.endpoint}/v1/models"
    try:
        listed = get_json(url, auth_headers(spec.name, spec.api_key_env))["data"][0]["id"]
    except EndpointError as exc:
        raise EndpointError(f"stack {spec.name}: {exc}") from exc
    except (KeyError, IndexError, TypeError) as exc:
        raise EndpointError(f"stack {spec.name}: {url} did not list a model: {exc!r}") \
            from exc
    return spec.model or str(listed)


@contextmanager
def serving(spec: Spec, log_dir: Path, observer: StartObserver) -> Iterator[Target]:
    """A launched stack (stopped on the way out), or an endpoint running elsewhere."""
    if isinstance(spec, EndpointSpec):
        yield Target(spec.name, spec.endpoint, spec.model or "", spec.api_key_env or "")
        return
    stack = Stack(spec, log_dir)
    try:
        stack.start(observer)
        yield Target(spec.name, stack.endpoint, stack.served_model, "", stack)
    finally:
        stack.stop()
