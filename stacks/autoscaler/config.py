"""A stack's `autoscaling:` section: which policy, its bounds, its target and its windows.

    autoscaling:
      policy: asymmetric       # static | symmetric | asymmetric
      min_replicas: 1
      max_replicas: 2
      target_concurrency: 2    # requests in flight per replica the fleet is sized for
      reference: hpa           # start from a named field default; fields given here win
      # target_from: results/<capacity run>   # the target measured: concurrency per replica
      #                                       # at capacity × target_utilization (0.7)

`static` keeps the stack's `replicas` (its autoscaler still observes and logs, so a fixed fleet
is measured the same way). The other two size the fleet as
⌈mean concurrency ÷ target⌉ within [min, max] and differ only in how fast they act on it
(`stacks.autoscaler.policy`): `symmetric` waits the same short `window_s` before acting in
either direction; `asymmetric` scales up at once (after `up_window_s`, 0 by default), by up to
`max_up_step` replicas a step, and down one replica at a time, only after `down_window_s` of
lower recommendations and `down_period_s` after the last step down.

The references are the field's defaults, cited so a reader can check them:

- `hpa`: Kubernetes HPA `behavior` — scale-up stabilization 0 s, up to 4 pods per 15 s;
  scale-down stabilization 300 s; tolerance 0.1 (10 % off target before acting).
- `knative-kpa`: Knative's KPA — 60 s stable window, 6 s panic window: it scales up on the
  6 s mean and down on the 60 s one. (Its most down in a step, half the fleet, is not
  modelled: `asymmetric` steps down one replica at a time.)
- `ray-serve`: Ray Serve — `upscale_delay_s` 30, `downscale_delay_s` 600, metrics averaged
  over `look_back_period_s` 30.
- `aibrix-apa`: AIBrix's APA — up fluctuation tolerance 0.1, down 0.2, a 30 s metric window,
  at most doubling per step (max scale-up rate 2), here 2 replicas a step: the same from 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stacks.errors import SpecError

PolicyName = Literal["static", "symmetric", "asymmetric"]
ReferenceName = Literal["hpa", "knative-kpa", "ray-serve", "aibrix-apa"]

# Each reference's windows, in this section's fields.
REFERENCES: dict[str, dict[str, Any]] = {
    "hpa": {"up_window_s": 0.0, "down_window_s": 300.0, "max_up_step": 4,
            "down_period_s": 15.0, "tolerance": 0.1, "metric_window_s": 15.0},
    "knative-kpa": {"up_window_s": 0.0, "down_window_s": 60.0, "metric_window_s": 6.0,
                    "down_period_s": 0.0, "tolerance": 0.0},
    "ray-serve": {"up_window_s": 30.0, "down_window_s": 600.0, "metric_window_s": 30.0,
                  "down_period_s": 0.0, "tolerance": 0.0},
    "aibrix-apa": {"up_window_s": 0.0, "down_window_s": 30.0, "metric_window_s": 30.0,
                   "max_up_step": 2, "tolerance": 0.1, "down_tolerance": 0.2},
}


class AutoscalingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: PolicyName = "static"
    reference: ReferenceName | None = Field(
        default=None, description="fill the windows not given here from a named field default")
    min_replicas: int = Field(default=1, ge=1, le=64)
    max_replicas: int = Field(default=2, ge=1, le=64)
    target_concurrency: float = Field(default=2.0, gt=0, description="requests in flight per "
                                      "replica the fleet is sized for")
    target_from: str | None = Field(
        default=None, description="a `harness capacity` results folder (or its summary.json): "
        "the target is its concurrency per replica at capacity × target_utilization")
    target_stack: str | None = Field(default=None, description="the stack to read there; "
                                     "default: this one")
    target_utilization: float = Field(default=0.7, gt=0, le=1, description="of the measured "
                                      "concurrency at capacity, with target_from")
    interval_s: float = Field(default=1.0, gt=0, le=60,
                              description="how often the balancer's in-flight count is read")
    metric_window_s: float = Field(default=6.0, gt=0, le=3600,
                                   description="concurrency is the mean over this window")
    tolerance: float = Field(default=0.1, ge=0, lt=1, description="how far the mean may stray "
                             "from the fleet's target before a step (HPA's 10 %)")
    down_tolerance: float | None = Field(default=None, ge=0, lt=1,
                                         description="for scaling down; `tolerance` when unset")
    window_s: float = Field(default=10.0, ge=0, le=3600,
                            description="symmetric: stabilization in both directions")
    up_window_s: float = Field(default=0.0, ge=0, le=3600, description="asymmetric")
    down_window_s: float = Field(default=300.0, ge=0, le=3600, description="asymmetric")
    max_up_step: int = Field(default=4, ge=1, le=64, description="asymmetric: replicas a step")
    down_period_s: float = Field(default=15.0, ge=0, le=3600,
                                 description="asymmetric: least time between steps down")

    @model_validator(mode="before")
    @classmethod
    def _from_reference(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("reference") in REFERENCES:
            return {**REFERENCES[raw["reference"]], **raw}
        return raw

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must not exceed "
                             f"max_replicas ({self.max_replicas})")
        return self

    @property
    def scales(self) -> bool:
        """Whether the fleet's size may change."""
        return self.policy != "static"


def measured_target(scaling: AutoscalingSpec, stack: str, root: Path) -> AutoscalingSpec:
    """The section with `target_concurrency` taken from the capacity run `target_from` names
    (relative paths from `root`): that stack's concurrency per replica at capacity ×
    `target_utilization`. Unchanged without `target_from`."""
    if scaling.target_from is None:
        return scaling
    path = Path(scaling.target_from).expanduser()
    path = path if path.is_absolute() else root / path
    summary = path / "summary.json" if path.is_dir() else path
    name = scaling.target_stack or stack
    try:
        stacks = json.loads(summary.read_text())["stacks"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"autoscaling.target_from: {summary} is not a `harness capacity` "
                        f"summary ({exc}); run `harness capacity --stacks {name}` and point "
                        "at its results folder") from None
    if name not in stacks:
        raise SpecError(f"autoscaling.target_from: {summary} has no stack {name!r} (it has "
                        f"{', '.join(stacks) or 'none'}); set autoscaling.target_stack")
    measured = stacks[name].get("concurrency_per_replica")
    if not measured:
        raise SpecError(f"autoscaling.target_from: {summary} measured no concurrency at "
                        f"capacity for {name} (a run from before it was recorded, or no "
                        "probe passed): run `harness capacity` again")
    return scaling.model_copy(update={
        "target_concurrency": round(float(measured) * scaling.target_utilization, 3)})
