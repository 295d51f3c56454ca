"""Autoscaling policies: pure functions of (state, observation) → (state, decision), looked up
by name in `POLICIES`. No I/O, no clock of their own: the actuator (`stacks.autoscaler.
actuator`) and the fleet simulator call the same code with their own observations and time.

Every policy but `static` sizes the fleet as Kubernetes' HPA does:

1. the recommendation is ⌈mean concurrency over `metric_window_s` ÷ target⌉, within
   [min, max] — left at the current size while the mean is within `tolerance` of what that
   size is meant to carry;
2. stabilization: a step up goes to the lowest recommendation of the last up window (0 s: at
   once), a step down to the highest of the last down window, so a short lull or a short burst
   moves nothing;
3. rate: at most `max_up_step` replicas up a step; down one replica a step, at least
   `down_period_s` apart (symmetric: as far as the recommendation goes, either way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

from stacks.autoscaler.config import AutoscalingSpec


@dataclass(frozen=True, slots=True)
class Observation:
    at_s: float  # on the caller's clock (monotonic seconds)
    concurrency: float  # requests in flight over the whole fleet


@dataclass(frozen=True, slots=True)
class ScalerState:
    replicas: int  # the size asked for last (ready and starting)
    samples: tuple[Observation, ...] = ()
    recommendations: tuple[tuple[float, int], ...] = ()  # (at_s, replicas)
    last_down_s: float = -math.inf


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int  # the fleet's size from now on
    recommendation: int  # before stabilization and rate limits
    mean_concurrency: float


class ScalingPolicy(Protocol):
    def decide(self, state: ScalerState, seen: Observation) -> tuple[ScalerState, Decision]: ...


class Static:
    """A fixed fleet: never scales."""

    def __init__(self, spec: AutoscalingSpec, replicas: int) -> None:
        self.replicas = replicas

    def decide(self, state: ScalerState, seen: Observation) -> tuple[ScalerState, Decision]:
        return state, Decision(self.replicas, self.replicas, seen.concurrency)


class Stabilized:
    """HPA's algorithm with a window and a step limit per direction."""

    def __init__(self, spec: AutoscalingSpec, up_window_s: float, down_window_s: float,
                 max_up_step: int, max_down_step: int, down_period_s: float) -> None:
        self.spec = spec
        self.up_window_s, self.down_window_s = up_window_s, down_window_s
        self.max_up_step, self.max_down_step = max_up_step, max_down_step
        self.down_period_s = down_period_s

    def recommend(self, current: int, mean: float) -> int:
        spec = self.spec
        ratio = mean / (current * spec.target_concurrency)
        down_tolerance = spec.tolerance if spec.down_tolerance is None else spec.down_tolerance
        if 1 - down_tolerance <= ratio <= 1 + spec.tolerance:
            wanted = current
        else:
            wanted = math.ceil(mean / spec.target_concurrency - 1e-9)
        return min(spec.max_replicas, max(spec.min_replicas, wanted))

    def decide(self, state: ScalerState, seen: Observation) -> tuple[ScalerState, Decision]:
        now, current = seen.at_s, state.replicas
        keep_s = max(self.spec.metric_window_s, self.up_window_s, self.down_window_s)
        samples = (*(s for s in state.samples if s.at_s >= now - keep_s), seen)
        window = [s.concurrency for s in samples if s.at_s > now - self.spec.metric_window_s]
        mean = sum(window) / len(window)
        wanted = self.recommend(current, mean)
        history = (*((t, n) for t, n in state.recommendations if t >= now - keep_s),
                   (now, wanted))
        up_to = min(n for t, n in history if t >= now - self.up_window_s)
        down_to = max(n for t, n in history if t >= now - self.down_window_s)
        replicas, last_down_s = current, state.last_down_s
        if up_to > current:
            replicas = min(up_to, current + self.max_up_step)
        elif down_to < current and now - state.last_down_s >= self.down_period_s:
            replicas, last_down_s = max(down_to, current - self.max_down_step), now
        new_state = replace(state, replicas=replicas, samples=samples, recommendations=history,
                            last_down_s=last_down_s)
        return new_state, Decision(replicas, wanted, mean)


def symmetric(spec: AutoscalingSpec, replicas: int) -> ScalingPolicy:
    """The same short window both ways, each step as far as the recommendation goes."""
    return Stabilized(spec, spec.window_s, spec.window_s, spec.max_replicas, spec.max_replicas,
                      down_period_s=0.0)


def asymmetric(spec: AutoscalingSpec, replicas: int) -> ScalingPolicy:
    """Up at once by up to `max_up_step`; down one at a time after a long window."""
    return Stabilized(spec, spec.up_window_s, spec.down_window_s, spec.max_up_step, 1,
                      spec.down_period_s)


POLICIES = {"static": Static, "symmetric": symmetric, "asymmetric": asymmetric}


def make_policy(spec: AutoscalingSpec, replicas: int) -> ScalingPolicy:
    """The spec's policy; `replicas`: the fleet a static policy keeps."""
    try:
        return POLICIES[spec.policy](spec, replicas)
    except KeyError:
        raise ValueError(f"unknown autoscaling policy {spec.policy!r}; known: "
                         f"{', '.join(POLICIES)}") from None
