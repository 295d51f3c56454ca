"""`mechanisms.json`, the typed result of `harness mechanisms`: each optimization measured alone
where it binds, as the gain it brings over the same stack without it, with its interval.
Computed by `harness.experiments.mechanisms_summary` from each mechanism's run folder."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.report.result_base import Figure, Result

Mechanism = Literal["w8a8", "multi_api", "p2c"]
Outcome = Literal["helps", "hurts", "too close to call"]


class VariantFigure(Result):
    """One side of a mechanism (off: without it; on: with it): its figure per trial and pooled."""

    stack: str = Field(description="the variant's stack name (its spec is in the part's specs/)")
    value: Figure = Field(description="the geometric mean of its trials' figures")
    trials: list[Figure] = Field(description="each trial's figure, in order")
    requests: int = Field(description="requests in its measured windows, all trials")
    offered_qps: Figure = Field(description="what the schedule offered in the window")
    throughput_qps: Figure = Field(description="what it answered in the window")
    send_lag_p99_s: Figure = Field(description="how late the load generator sent (P99)")


class MechanismResult(Result):
    mechanism: Mechanism
    label: str = Field(description="the optimization, as shown")
    bottleneck: str = Field(description="where it binds, the regime the scenario sets up")
    setting: str = Field(description="workload, load, replicas, trials, as shown")
    metric: str = Field(description="the figure compared, a key of a run's stack summary")
    metric_label: str
    unit: str = Field(description="the figure's unit: tokens/s, QPS or s")
    per_replica: bool = Field(description="throughput figures are divided by the replicas")
    higher_is_better: bool
    off: VariantFigure = Field(description="the stack without the optimization")
    on: VariantFigure = Field(description="the same stack with it")
    ratio: Figure = Field(description="on ÷ off, the geometric mean of the paired trials")
    ratio_ci_low: Figure = Field(description="95 % paired Student-t interval on log ratios "
                                             "(null: fewer than 2 paired trials)")
    ratio_ci_high: Figure
    gain: Figure = Field(description="the ratio, turned so that > 1 means the optimization "
                                     "helps (1 ÷ ratio for a latency)")
    gain_ci_low: Figure
    gain_ci_high: Figure
    outcome: Outcome = Field(description="helps: the gain's interval lies above 1; hurts: "
                             "below 1; too close to call: it includes 1, or there is none")
    verdict: str = Field(description="the outcome, with the figures")
    notes: list[str] = Field(default_factory=list,
                             description="what limits the figure: a variant not saturated, "
                                         "a load generator that sent late")
    part: str = Field(description="its run folder, relative to the mechanisms folder")


class Mechanisms(Result):
    """`mechanisms.json`: rewritten after each mechanism, so a run cut short keeps them."""

    kind: Literal["mechanisms"] = "mechanisms"
    run: str
    baseline: str = Field(description="the stack each mechanism is added to")
    source: str = Field(description="the stack each mechanism's setting is taken from")
    mechanisms: list[MechanismResult]
    pending: list[str] = Field(description="mechanisms not measured (yet)")
