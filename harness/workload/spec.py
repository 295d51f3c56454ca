"""Workload specs: the YAML files under `workloads/`, validated with pydantic.

A spec says what traffic to offer — the arrival process, a steady rate or a shape made of stages
(steady, ramp, step, spike, sinusoid), how long, the warm-up before measurement, prompt and
output lengths, streaming, which API — and the seed that makes it one exact schedule. A bad spec
fails with `SpecError`, one line naming the file, the field and what is allowed.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.workload.arrivals import ArrivalProcess, Segment
from stacks.errors import SpecError
from stacks.spec import PROJECT_ROOT, describe_validation_error, read_yaml_mapping

WORKLOADS_DIR = PROJECT_ROOT / "workloads"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Steady(_Strict):
    kind: Literal["steady"]
    qps: float = Field(ge=0)
    duration_s: float = Field(gt=0)

    def segments(self) -> list[Segment]:
        return [Segment(self.qps, self.qps, self.duration_s)]


class Ramp(_Strict):
    """A linear change of rate from `from_qps` to `to_qps`."""

    kind: Literal["ramp"]
    from_qps: float = Field(ge=0)
    to_qps: float = Field(ge=0)
    duration_s: float = Field(gt=0)

    def segments(self) -> list[Segment]:
        return [Segment(self.from_qps, self.to_qps, self.duration_s)]


class Step(_Strict):
    """`steps` equal steady plateaus from `from_qps` up (or down) to `to_qps`."""

    kind: Literal["step"]
    from_qps: float = Field(ge=0)
    to_qps: float = Field(ge=0)
    steps: int = Field(ge=2, le=1000)
    duration_s: float = Field(gt=0, description="the whole staircase")

    def segments(self) -> list[Segment]:
        each_s = self.duration_s / self.steps
        rise = (self.to_qps - self.from_qps) / (self.steps - 1)
        return [Segment(self.from_qps + k * rise, self.from_qps + k * rise, each_s)
                for k in range(self.steps)]


class Spike(_Strict):
    """`base_qps`, then `peak_qps` for `spike_s` starting at `at_s`, then `base_qps` again."""

    kind: Literal["spike"]
    base_qps: float = Field(ge=0)
    peak_qps: float = Field(ge=0)
    at_s: float = Field(ge=0)
    spike_s: float = Field(gt=0)
    duration_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _spike_fits(self) -> Spike:
        if self.at_s + self.spike_s > self.duration_s:
            raise ValueError("the spike (at_s + spike_s) must end within duration_s")
        return self

    def segments(self) -> list[Segment]:
        parts = [(self.base_qps, self.at_s), (self.peak_qps, self.spike_s),
                 (self.base_qps, self.duration_s - self.at_s - self.spike_s)]
        return [Segment(qps, qps, length_s) for qps, length_s in parts if length_s > 0]


class Sinusoid(_Strict):
    """`mean_qps` + `amplitude_qps` · sin(2π t / `period_s`), from t = 0: a day's tide in
    miniature, drawn as straight pieces of 1/24 period each."""

    kind: Literal["sinusoid"]
    mean_qps: float = Field(gt=0)
    amplitude_qps: float = Field(ge=0)
    period_s: float = Field(gt=0)
    duration_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _never_negative(self) -> Sinusoid:
        if self.amplitude_qps > self.mean_qps:
            raise ValueError("amplitude_qps must not exceed mean_qps (a rate is never negative)")
        return self

    def rate_at(self, t_s: float) -> float:
        return self.mean_qps + self.amplitude_qps * math.sin(2 * math.pi * t_s / self.period_s)

    def segments(self) -> list[Segment]:
        piece_s = self.period_s / 24
        edges = [*(k * piece_s for k in range(math.ceil(self.duration_s / piece_s))),
                 self.duration_s]
        return [Segment(self.rate_at(a), self.rate_at(b), b - a)
                for a, b in itertools.pairwise(edges) if b > a]


Stage = Annotated[Steady | Ramp | Step | Spike | Sinusoid, Field(discriminator="kind")]


class LengthSpec(_Strict):
    """A token count drawn per request: `fixed` is always `mean`; `normal` and `lognormal`
    have the given mean and stdev; `uniform` spans [min, max]. Draws are clipped to
    [min, max] and rounded."""

    distribution: Literal["fixed", "normal", "lognormal", "uniform"] = "fixed"
    mean: float = Field(gt=0)
    stdev: float = Field(default=0.0, ge=0)
    min: int = Field(default=1, ge=1)
    max: int = Field(default=4096, ge=1)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> LengthSpec:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if not self.min <= self.mean <= self.max:
            raise ValueError(f"mean ({self.mean}) must lie within [min, max]")
        return self


class WorkloadSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    locustfile: str = Field(default="writing_assistant.py",
                            description="under workloads/, or a path")
    api: Literal["completions", "chat"] = "completions"
    arrival: ArrivalProcess = "poisson"
    # Either a steady rate for `duration_s`, or `stages` (which then set the duration).
    rate_qps: float | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, gt=0)
    stages: list[Stage] | None = Field(default=None, min_length=1)
    warmup_s: float = Field(default=10.0, ge=0,
                            description="sent at the first stage's rate; never measured")
    max_in_flight: int = Field(default=256, ge=1, le=100_000,
                               description="senders; a send waits only when all are busy")
    timeout_s: float = Field(default=30.0, gt=0, description="per request, send to last byte")
    prompt_tokens: LengthSpec = LengthSpec(mean=50, stdev=10, min=8, max=200,
                                           distribution="normal")
    output_tokens: LengthSpec = LengthSpec(mean=50)
    tokenizer: str = Field(default="models/tiny",
                           description="model directory whose tokenizer sizes the prompts")
    ignore_eos: bool = Field(default=True, description="generate exactly max_tokens (vLLM)")
    stream: bool = False
    slo_s: float = Field(default=1.0, gt=0, description="end-to-end latency target, goodput")
    seed: int = 0

    @model_validator(mode="after")
    def _one_shape(self) -> WorkloadSpec:
        if self.stages is None and (self.rate_qps is None or self.duration_s is None):
            raise ValueError("give rate_qps and duration_s, or a list of stages")
        if self.stages is not None and (self.rate_qps is not None
                                        or self.duration_s is not None):
            raise ValueError("give either stages or rate_qps/duration_s, not both")
        return self

    def measured_segments(self) -> list[Segment]:
        if self.stages is None:
            assert self.rate_qps is not None
            assert self.duration_s is not None
            return [Segment(self.rate_qps, self.rate_qps, self.duration_s)]
        return [segment for stage in self.stages for segment in stage.segments()]

    def segments(self) -> list[Segment]:
        """The whole schedule's rate: warm-up at the first rate, then the measured stages."""
        measured = self.measured_segments()
        if self.warmup_s == 0:
            return measured
        first_qps = measured[0].start_qps
        return [Segment(first_qps, first_qps, self.warmup_s), *measured]

    @property
    def measured_s(self) -> float:
        return sum(segment.duration_s for segment in self.measured_segments())

    def with_overrides(self, rate_qps: float | None = None,
                       duration_s: float | None = None) -> WorkloadSpec:
        """`--rate` replaces the shape with a steady rate; `--duration` sets a steady
        workload's length."""
        if rate_qps is None and duration_s is None:
            return self
        if self.stages is not None and rate_qps is None:
            raise SpecError(f"workload {self.name} is shaped by stages; --duration applies to a "
                            "steady rate: also give --rate to replace the stages")
        changes = {"stages": None, "rate_qps": rate_qps or self.rate_qps,
                   "duration_s": duration_s or self.duration_s or self.measured_s}
        try:
            return WorkloadSpec.model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            reason = describe_validation_error(exc, WorkloadSpec)
            raise SpecError(f"workload {self.name}: {reason}") from exc

    def scaled(self, factor: float) -> WorkloadSpec:
        """Every rate of the schedule × `factor` (`--rate-scale`), times unchanged: a shape
        written for one machine's capacity, fitted to another's."""
        if not 0 < factor < math.inf:
            raise SpecError(f"--rate-scale must be a number above 0, got {factor:g}")
        if factor == 1:
            return self

        def times(fields: dict[str, object]) -> dict[str, object]:
            # Every rate is a float field named *qps; rounded, so that 0.1 × 3 reads 0.3.
            return {key: round(value * factor, 9) if key.endswith("qps")
                    and isinstance(value, float) else value for key, value in fields.items()}

        dumped = times(self.model_dump())
        if self.stages is not None:
            dumped["stages"] = [times(stage.model_dump()) for stage in self.stages]
        try:
            return WorkloadSpec.model_validate(dumped)
        except ValidationError as exc:
            reason = describe_validation_error(exc, WorkloadSpec)
            raise SpecError(f"workload {self.name} × {factor:g}: {reason}") from exc

    def tokenizer_path(self) -> Path:
        path = Path(self.tokenizer).expanduser()
        return path if path.is_absolute() else PROJECT_ROOT / path

    def locustfile_path(self) -> Path:
        path = Path(self.locustfile).expanduser()
        return path if path.is_absolute() else WORKLOADS_DIR / path


def resolve_workload_path(workload: str) -> Path:
    """A workload is a name under `workloads/` or a path to a YAML file."""
    candidate = Path(workload).expanduser()
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise SpecError(f"{candidate}: no such workload file")
        return candidate
    named = WORKLOADS_DIR / f"{workload}.yaml"
    if not named.is_file():
        known = sorted(p.stem for p in WORKLOADS_DIR.glob("*.yaml"))
        raise SpecError(f"unknown workload {workload!r}; known: {', '.join(known)}, or a path "
                        "to a .yaml file")
    return named


def load_workload_spec(workload: str) -> WorkloadSpec:
    path = resolve_workload_path(workload)
    raw = read_yaml_mapping(path, "workload")
    try:
        return WorkloadSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{path}: {describe_validation_error(exc, WorkloadSpec)}") from exc
