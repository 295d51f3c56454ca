"""Stack specs: the `stack.yaml` files under `stacks/`, validated with pydantic.

A spec says what one serving stack is made of: the engine each replica runs (model, vLLM
arguments, environment, API server processes), how many replicas, the balancer policy in front
of them, how replicas are pinned to cores, where their runtime comes from (an image or this
machine), and which ports to use. A bad spec fails with
`SpecError`, one line naming the file, the field and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stacks.autoscaler.config import AutoscalingSpec, measured_target
from stacks.balancer.policies import POLICIES
from stacks.errors import SpecError

STACKS_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = STACKS_DIR.parent

ArgValue = str | int | float | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuantizationSpec(_Strict):
    """Serve a W8A8 copy of `engine.model` instead of the model itself. The harness writes the
    copy (compressed-tensors format) on first use, cached by the source's hash; vLLM reads
    the scheme from its config."""

    scheme: Literal["auto", "int8", "fp8"] = Field(
        default="auto", description="fp8 on H100-class GPUs, int8 on CPUs; auto picks")
    granularity: Literal["channel", "tensor"] = Field(
        default="channel", description="weight scales per output channel or per tensor")


class EngineSpec(_Strict):
    """What every replica runs: one vLLM OpenAI server over one model directory."""

    model: str = Field(description="HF model directory, absolute or relative to the project root")
    served_model_name: str | None = None
    quantization: QuantizationSpec | None = None
    # vLLM CLI arguments without the leading dashes: `true` is a bare flag, `false` is the
    # `--no-` form, `null` leaves vLLM's default; anything else becomes `--key value`.
    args: dict[str, ArgValue] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    api_server_count: int = Field(default=1, ge=1, le=64)

    @field_validator("args")
    @classmethod
    def _args_are_bare_names(cls, args: dict[str, ArgValue]) -> dict[str, ArgValue]:
        for key in args:
            if key.startswith("-") or not key or " " in key:
                raise ValueError(f"argument names go without dashes or spaces, got {key!r}")
            if key in ("model", "port", "host", "api-server-count", "served-model-name"):
                raise ValueError(f"{key!r} is set by the launcher; use the spec field instead")
        return args

    def model_path(self) -> Path:
        path = Path(self.model).expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path


class OutlierSpec(_Strict):
    """Envoy's consecutive-5xx outlier detection, with its defaults."""

    consecutive_5xx: int = Field(default=5, ge=1, description="failed attempts in a row "
                                 "(5xx, refused or dropped connection, attempt timeout)")
    base_ejection_s: float = Field(default=30.0, gt=0, description="ejected for this × the "
                                   "times it has been ejected")
    max_ejection_percent: float = Field(default=10.0, ge=0, le=100, description="never more "
                                        "than this % of replicas out (one may always go)")


class RetryBudgetSpec(_Strict):
    """Envoy's retry budget, with its defaults."""

    percent: float = Field(default=20.0, gt=0, le=100, description="retries in flight under "
                           "this % of requests in flight")
    min_concurrency: int = Field(default=3, ge=0, description="... or under this many")


class AdmissionSpec(_Strict):
    queue_limit: int = Field(ge=1, description="503 with Retry-After once every serving "
                             "replica has this many requests in flight or queued")
    retry_after_s: int = Field(default=1, ge=0)


class BalancerSpec(_Strict):
    policy: str = "round_robin"
    host: str = "127.0.0.1"
    seed: int = 0
    upstream_timeout_s: float = Field(default=600.0, gt=0)
    health_interval_s: float = Field(
        default=0.0, ge=0, description="probe replicas' /health this often and eject one "
                                       "failing twice in a row; 0: off")
    load_interval_s: float = Field(
        default=0.0, ge=0, description="scrape replicas' running + waiting requests this "
                                       "often, for load-aware policies; 0: off")
    retry: bool = Field(default=False, description="retry once on another replica when the "
                                                   "connection is refused, a 502/503 came or "
                                                   "the attempt timed out before any byte "
                                                   "reached the client")
    outlier: OutlierSpec | None = Field(default=None, description="outlier detection; "
                                        "absent: off")
    retry_budget: RetryBudgetSpec | None = Field(default=None, description="a bound on "
                                                 "retries; absent: every eligible retry")
    per_try_timeout_s: float = Field(default=0.0, ge=0, description="abandon an attempt that "
                                     "has not started to answer by then (retried if allowed); "
                                     "0: off")
    admission: AdmissionSpec | None = Field(default=None, description="admission control; "
                                            "absent: off")
    max_header_bytes: int = Field(default=64 * 1024, ge=1024,
                                  description="request line and headers over this: 431")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024,
                                description="request bodies over this: 413")
    header_timeout_s: float = Field(default=30.0, gt=0, description="headers not complete "
                                    "this long after a request's first byte: 408")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                    description="environment variable holding the key clients "
                                                "must send as a bearer token (401 otherwise)")

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, policy: str) -> str:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy; allowed: {', '.join(POLICIES)}")
        return policy


class PortsSpec(_Strict):
    # 0 means "any free port": replicas get free ports unless a base is given.
    balancer: int = Field(default=0, ge=0, le=65535)
    replica_base: int = Field(default=0, ge=0, le=65535)


class CpuSpec(_Strict):
    """Which cores each replica's inference threads are bound to.

    `auto` splits the cores this process may use into equal, disjoint shares, one per replica
    (on 2 cores: replica 0 on core 0, replica 1 on core 1), so replicas never fight over a
    core; `none` leaves vLLM's own choice; an explicit list gives each replica a
    `VLLM_CPU_OMP_THREADS_BIND` value ("0", "0-1", "2,3"...), reused round the list.

    `pin`: `threads` binds only the engine's compute threads to those cores (vLLM's
    `VLLM_CPU_OMP_THREADS_BIND`), so its API servers and engine core run on any core; `replica`
    confines every process of the replica to them. vLLM's engine core and worker wait for each
    other by spinning for up to 1 s (its shared-memory queue), so an unconfined engine core
    spins on the other replicas' cores. With `replica`, the helpers get fixed places too: the
    balancer on the first replica's cores, the load generator on the last replica's, so which
    replica they slow is the same in every run (`stacks.launcher.helper_cores`).

    `nice`: every process of the stack (replicas and balancer) runs at this niceness.
    """

    binding: Literal["auto", "none"] | list[str] = "auto"
    pin: Literal["threads", "replica"] = "threads"
    nice: int = Field(default=10, ge=0, le=19, description="CPU priority the stack's processes "
                      "yield (Unix niceness, and their session's scheduler group's) to a load "
                      "generator sharing the machine, the measuring instrument; 0: none")


class ImageSpec(_Strict):
    """Where a replica's runtime and model come from (docs/images.md). `none`: this machine's
    virtual environment and model directory. `eager`: the stack's image, downloaded whole from
    the registry, its digest checked, unpacked to local disk. `lazy`: the image mounted at
    once, each 4 MiB block fetched from the registry on first read and cached on local disk."""

    mode: Literal["none", "eager", "lazy"] = "none"
    prefetch: bool = Field(default=True, description="lazy: read the blocks an earlier start "
                           "read, in its order, in the background from the mount on")
    file_system: Literal["auto", "kernel", "fuse"] = Field(
        default="auto", description="lazy: what reads the image's file system: the kernel's "
        "squashfs on a loop device (needs root), squashfuse_ll over FUSE, or auto: the kernel "
        "where it may mount")


class StackSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    engine: EngineSpec
    replicas: int = Field(default=1, ge=1, le=64)
    balancer: BalancerSpec = Field(default_factory=BalancerSpec)
    cpu: CpuSpec = Field(default_factory=CpuSpec)
    image: ImageSpec = Field(default_factory=ImageSpec)
    ports: PortsSpec = Field(default_factory=PortsSpec)
    startup_timeout_s: float = Field(default=300.0, gt=0)
    restart_policy: Literal["always", "never"] = Field(
        default="always", description="a replica that exits is started again (always), as a "
                                      "Deployment's restartPolicy does, or left down (never)")
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="its autoscaler, in force under `harness up` and in a trial "
        "whose scenario scales (`autoscale: true`); elsewhere the fleet is `replicas`")

    @property
    def replica_slots(self) -> int:
        """How many replicas it may ever run at once: each slot has its own share of the cores,
        as a pod has its own CPU request, whether the slots are filled or not."""
        if self.autoscaling is not None:
            return max(self.replicas, self.autoscaling.max_replicas)
        return self.replicas

    @property
    def initial_replicas(self) -> int:
        """Its size at start: `replicas`, or under a scaling policy its minimum."""
        scaling = self.autoscaling
        return scaling.min_replicas if scaling is not None and scaling.scales else self.replicas

    def fixed_fleet(self) -> StackSpec:
        """The same stack without its autoscaler: `replicas` replicas throughout."""
        return self if self.autoscaling is None else self.model_copy(update={"autoscaling": None})


class EndpointSpec(_Strict):
    """A stack already running elsewhere (a GPU cluster, say): the harness drives and
    measures its OpenAI-compatible endpoint and launches nothing."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    endpoint: str = Field(pattern=r"^https?://[^\s/]+", description="base URL, without /v1")
    model: str | None = Field(default=None,
                              description="served model name; default: the first of /v1/models")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                    description="environment variable holding a bearer key")
    replicas: int | None = Field(default=None, ge=1,
                                 description="engine replicas behind it, for per-replica "
                                             "capacity; unknown when unset")


def resolve_stack_path(stack: str) -> Path:
    """A stack is a name under `stacks/` or a path to a stack.yaml."""
    candidate = Path(stack).expanduser()
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if candidate.is_dir():
            candidate = candidate / "stack.yaml"
        if not candidate.is_file():
            raise SpecError(f"{candidate}: no such stack file")
        return candidate
    named = STACKS_DIR / stack / "stack.yaml"
    if not named.is_file():
        known = sorted(p.parent.name for p in STACKS_DIR.glob("*/stack.yaml"))
        raise SpecError(f"unknown stack {stack!r}; known stacks: {', '.join(known)}, or a path")
    return named


def read_yaml_mapping(path: Path, kind: str) -> dict[str, object]:
    """The top-level mapping of a spec file, or a SpecError saying what is wrong with it."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of {kind} fields at the top level")
    return raw


def load_stack_spec(stack: str) -> StackSpec | EndpointSpec:
    """A stack name, a path to its YAML, or `name=URL` for an endpoint running elsewhere."""
    name, sep, url = stack.partition("=")
    if sep and not Path(stack).expanduser().exists():
        try:
            return EndpointSpec(name=name, endpoint=url.rstrip("/"))
        except ValidationError as exc:
            raise SpecError(f"stack {stack!r}: {describe_validation_error(exc, EndpointSpec)}; "
                            "write it as NAME=http(s)://HOST[:PORT]") from exc
    path = resolve_stack_path(stack)
    raw = read_yaml_mapping(path, "stack")
    model: type[StackSpec | EndpointSpec] = EndpointSpec if "endpoint" in raw else StackSpec
    try:
        spec = model.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path}: {describe_validation_error(exc, model)}") from exc
    if isinstance(spec, StackSpec) and spec.autoscaling is not None:
        try:
            spec = spec.model_copy(update={"autoscaling": measured_target(
                spec.autoscaling, spec.name, PROJECT_ROOT)})
        except SpecError as exc:
            raise SpecError(f"{path}: {exc}") from None
    return spec


def load_local_stack_spec(stack: str) -> StackSpec:
    """A stack this machine launches (not an endpoint running elsewhere)."""
    spec = load_stack_spec(stack)
    if isinstance(spec, EndpointSpec):
        raise SpecError(f"stack {spec.name} is an endpoint running elsewhere ({spec.endpoint}); "
                        "only stacks with an engine can be brought up here")
    return spec


def describe_validation_error(exc: ValidationError,
                              model: type[BaseModel] | None = None) -> str:
    """First error as `field.path: message (got value)` — one line a user can act on. An
    unknown field lists the fields allowed there (of `model`, StackSpec by default)."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        allowed = _fields_at(model or StackSpec, first["loc"][:-1])
        message = f"unknown field; allowed: {', '.join(allowed)}" if allowed else message
    shown = first.get("input")
    got = f" (got {shown!r})" if shown is not None and not isinstance(shown, dict) else ""
    more = f"; {len(exc.errors()) - 1} more error(s)" if len(exc.errors()) > 1 else ""
    return f"{field}: {message}{got}{more}" if field else f"{message}{more}"


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the nested model found by following `loc` down from `model`."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
