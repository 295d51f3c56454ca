"""Typed results: what a results folder's `run.json` and `summary.json` hold, as pydantic models
that both write and read them. `docs/results-format.md` is generated from these models
(`python -m harness.report.results_doc`), so the documented format is the written one.

Every number in a summary is computed by `harness.measure.metrics` (or, for capacity, by
`harness.experiments.capacity.stats`) from the per-request records; these models only carry
it. A number that could not be computed (no request to take it over) is null, never 0. Field
names are those summaries have always had, so saved runs and the MLflow store stay readable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import ConfigDict, Field, ValidationError

from harness.errors import ResultsError
from harness.measure.metrics import Window
from harness.report.reliability_results import Reliability
from harness.report.result_base import Figure, Result
from harness.report.scaling_results import Scaling, ScalingAblation


class MeasuredWindow(Result):
    start_s: float = Field(description="warm-up: requests scheduled before it are not measured")
    length_s: float = Field(description="measured seconds, by scheduled send time")

    def window(self) -> Window:
        return Window(self.start_s, self.length_s)


class StackFigures(Result):
    """One stack's figures over its trials (`harness.measure.metrics.summarize`)."""

    trials: int = Field(description="trials pooled into these figures")
    window_s: float = Field(description="measured seconds per trial")
    requests: int = Field(description="requests scheduled in the measured window")
    ok_requests: int = Field(description="of those, the ones that succeeded")
    failed_requests: int = Field(description="of those, the ones that failed or never finished")
    success_rate: Figure = Field(description="ok_requests ÷ requests")
    success_rate_low: Figure = Field(default=None, description="its exact one-sided 95 % "
                                     "lower bound (Clopper–Pearson; absent in early runs)")
    offered_qps: float = Field(description="requests scheduled in the window per second")
    throughput_qps: float = Field(description="successes finished in the window per second")
    goodput_qps: float = Field(description="of those, the ones within slo_s end to end")
    output_tokens_per_s: float = Field(description="output tokens of those successes per second")
    slo_s: float = Field(description="the end-to-end latency target goodput is judged by")
    latency_count: int = Field(description="successes end-to-end latency was taken over")
    latency_p50_s: Figure = Field(description="P50 end to end, from the scheduled send, s")
    latency_p90_s: Figure = Field(description="P90 end to end, s")
    latency_p99_s: Figure = Field(description="P99 end to end, s (the headline tail)")
    latency_p999_s: Figure = Field(description="P99.9 end to end, s")
    latency_mean_s: Figure = Field(description="mean end to end, s")
    latency_over_slo: int | None = Field(default=None, description="successes slower than "
                                         "slo_s end to end (absent in early runs)")
    latency_over_slo_allowed: int | None = Field(default=None, description="the most that may "
                                                 "be for P99 ≤ slo_s: how many requests decide "
                                                 "it (absent in early runs)")
    service_count: int = Field(description="successes service latency was taken over")
    service_p50_s: Figure = Field(description="P50 from the actual send, s")
    service_p90_s: Figure = Field(description="P90 from the actual send, s")
    service_p99_s: Figure = Field(description="P99 from the actual send, s")
    service_p999_s: Figure = Field(description="P99.9 from the actual send, s")
    service_mean_s: Figure = Field(description="mean from the actual send, s")
    ttft_count: int | None = Field(default=None, description="streams only: successes TTFT "
                                                             "was taken over")
    ttft_p50_s: Figure = Field(default=None, description="streams only: P50 time to first "
                                                         "token after the send, s")
    ttft_p90_s: Figure = Field(default=None, description="streams only: P90 TTFT, s")
    ttft_p99_s: Figure = Field(default=None, description="streams only: P99 TTFT, s")
    ttft_p999_s: Figure = Field(default=None, description="streams only: P99.9 TTFT, s")
    ttft_mean_s: Figure = Field(default=None, description="streams only: mean TTFT, s")
    send_lag_count: int = Field(description="requests sent (send lag is taken over them)")
    send_lag_p50_s: Figure = Field(description="P50 of actual − scheduled send, s")
    send_lag_p90_s: Figure = Field(description="P90 send lag, s")
    send_lag_p99_s: Figure = Field(description="P99 send lag, s: the load generator's fidelity")
    send_lag_p999_s: Figure = Field(description="P99.9 send lag, s")
    send_lag_mean_s: Figure = Field(description="mean send lag, s")
    send_lag_max_s: Figure = Field(description="largest send lag, s")
    errors: dict[str, int] = Field(description="failed requests per error class (`timeout`, "
                                               "`connection`, `http_<status>`, `unrecorded`, "
                                               "`stopped`...)")
    replica_share: dict[str, float] = Field(description="fraction of answered requests per "
                                                        "replica (from `x-upstream`)")


class StackSummary(StackFigures):
    schedule_sha256: str = Field(description="the schedule every trial of this stack replayed")
    records: str = Field(description="folder of its per-request records, relative to the run")
    reliability: Reliability | None = Field(default=None,
                                            description="with --scenario only")
    scaling: Scaling | None = Field(default=None, description="with a scenario that scales")


class Contribution(Result):
    """An optimization's share: the full stack's figure ÷ its variant's without it."""

    variant: str
    throughput_qps: Figure = None
    goodput_qps: Figure = None
    latency_p50_s: Figure = None
    latency_p99_s: Figure = None
    success_rate: Figure = None


class Ablation(Result):
    stack: str = Field(description="the stack studied")
    variants: dict[str, str] = Field(description="optimization → the variant stack without it")
    contributions: dict[str, Contribution]


class ComparisonSummary(Result):
    """`summary.json` of `harness run`: rewritten after every trial."""

    run: str = Field(description="the results folder's name")
    workload: str
    schedule_sha256: str = Field(description="sha256 of schedule.jsonl")
    window: MeasuredWindow
    baseline: str = Field(description="the stack the ratios divide by (the first)")
    stacks: dict[str, StackSummary] = Field(description="per stack, in the order run")
    ratios: dict[str, dict[str, Figure]] = Field(
        description="per other stack, its figure ÷ the baseline's, for the ratio metrics")
    ablation: Ablation | None = Field(default=None, description="with --ablate only")
    scaling_ablation: ScalingAblation | None = Field(default=None,
                                                     description="with --ablate-scaling only")
    scenario: str | None = Field(default=None, description="the faults played, if any "
                                                           "(`workloads/scenarios/`)")
    interrupted: dict[str, str] | None = Field(
        default=None, description="per stack, its trial that was cut short and what of it "
                                  "was summarized (only in a summary rebuilt from records)")

    @property
    def slo_s(self) -> float:
        """The SLO goodput was judged by: the workload's, the same for every stack."""
        return next(iter(self.stacks.values())).slo_s


class TrialCapacity(Result):
    trial: int
    capacity_qps: float | None = Field(description="highest passing rate; null: failed at the "
                                                   "lowest rate probed")
    failing_qps: float | None = Field(description="lowest failing rate; null: never failed")
    bracket_qps: float = Field(description="failing_qps − capacity_qps (0 where either is "
                                           "missing)")
    resolved: bool = Field(description="the bracket closed to the tolerance")
    probes: int


class ProbeRow(Result):
    """One probe: a fixed-duration open-loop run at one rate, judged against the SLO."""

    trial: int
    probe: int = Field(description="its order within the search, from 1")
    rate_qps: float
    passed: bool
    stopped_early: str | None = Field(description="why it was stopped once failing was "
                                                  "certain; null: it ran whole")
    drained_s: float = Field(description="seconds waited for the stack to go idle before it")
    requests: int
    ok_requests: int
    failed_requests: int
    success_rate: Figure
    offered_qps: float
    throughput_qps: float
    goodput_qps: float
    latency_p50_s: Figure
    latency_p90_s: Figure
    latency_p99_s: Figure
    latency_over_slo: int | None = Field(default=None, description="successes slower than the "
                                         "SLO (absent in early runs)")
    latency_over_slo_allowed: int | None = Field(default=None, description="the most that may "
                                                 "be for P99 ≤ SLO (absent in early runs)")
    service_p99_s: Figure
    send_lag_p99_s: Figure
    concurrency: Figure = Field(default=None, description="mean requests in flight: throughput "
                                "× mean service time (Little's law; absent in early runs)")
    errors: dict[str, int]
    schedule_sha256: str
    schedule: str = Field(description="its schedule file, relative to the run")
    records: str = Field(description="its records parquet, relative to the run")


class StackCapacity(Result):
    """A stack's capacity over its trials (`harness.experiments.capacity.stats`)."""

    replicas: int | None = Field(description="engine replicas; null: unknown (an endpoint)")
    trials: list[TrialCapacity]
    status: Literal["measured", "lower_bound", "fails_at_lowest_rate", "not_run"]
    note: str = Field(description="what the status means for this stack")
    capacity_qps: float | None = Field(description="mean over trials; null unless measured "
                                                   "or lower_bound")
    per_replica_capacity_qps: float | None
    ci_low: float | None = Field(description="95 % interval over trials (null: one trial)")
    ci_high: float | None
    per_replica_ci_low: float | None = None
    per_replica_ci_high: float | None = None
    concurrency_per_replica: Figure = Field(
        default=None, description="requests in flight per replica at capacity: the mean over "
        "trials of the highest passing probe's concurrency ÷ replicas; what an autoscaler's "
        "target is sized from (`autoscaling.target_from`)")
    interval_method: str | None
    probes: list[ProbeRow] = Field(default_factory=list)

    def shown_capacity(self) -> tuple[float | None, float | None, float | None]:
        """(value, low, high) as shown: per replica where the replicas are known, else the
        whole stack's."""
        if self.replicas is not None:
            return self.per_replica_capacity_qps, self.per_replica_ci_low, \
                self.per_replica_ci_high
        return self.capacity_qps, self.ci_low, self.ci_high


class CapacityRatio(Result):
    stack: str
    baseline: str
    value: float | None = Field(description="geometric mean of the paired trial ratios")
    ci_low: float | None
    ci_high: float | None
    method: str | None
    verdict: str = Field(description="who serves more, that they are alike, or that it is "
                                     "too close to call")
    alike: bool = Field(default=False, description="the interval lies within the equivalence "
                        "margin (harness.measure.alike) and both capacities were bracketed; "
                        "with an interval that excludes 1 too: a winner, alike in practice")

    @property
    def side(self) -> Literal["above", "below", "alike", "includes"] | None:
        """Where the interval lies against 1 (None: no interval); `alike`: it includes 1 and
        the two are alike (`alike`). A winner's side comes first."""
        if self.ci_low is None or self.ci_high is None:
            return None
        if self.ci_low > 1 or self.ci_high < 1:
            return "above" if self.ci_low > 1 else "below"
        return "alike" if self.alike else "includes"


class CapacityAblation(Result):
    stack: str
    variants: dict[str, str]
    contributions: dict[str, CapacityRatio] = Field(
        description="per optimization, the full stack's capacity ÷ its variant's")


class Slo(Result):
    p99_s: float
    min_success: float


class SearchSettings(Result):
    start_qps: float
    growth: float
    tolerance: float
    max_qps: float
    max_probes: int
    duration_s: float = Field(description="measured seconds per probe")
    min_qps: float | None = Field(default=None, description="the lowest rate the search may "
                                  "probe (absent in early runs)")
    warmup_s: float = Field(description="warm-up seconds per probe")


class CapacitySummary(Result):
    """`summary.json` of `harness capacity`: rewritten after every search."""

    kind: Literal["capacity"] = "capacity"
    run: str
    workload: str
    slo: Slo
    search: SearchSettings
    window: MeasuredWindow
    trials: int
    baseline: str
    stacks: dict[str, StackCapacity]
    ratio: CapacityRatio | None = Field(description="the first other stack's ratio")
    ratios: dict[str, CapacityRatio]
    ablation: CapacityAblation | None = Field(default=None, description="with --ablate only")


class Agreement(Result):
    """One stack's greedy answers against the baseline's (`harness.experiments.quality`)."""

    stack: str
    baseline: str
    prompts: int
    token_agreement: Figure = Field(description="agreeing positions ÷ the baseline's tokens")
    exact_match_rate: float = Field(description="answers identical token for token")
    first_divergence_mean: float
    first_divergence_min: int
    logprob_diff_mean: Figure = Field(description="|Δ log p| over agreeing positions")
    logprob_diff_max: Figure
    passed: bool


class AnswerTokens(Result):
    tokens: list[str]
    logprobs: list[float]


class QualitySettings(Result):
    """What `harness quality` was asked."""

    stacks: list[str]
    workload: str
    prompts: int
    max_tokens: int
    min_agreement: float
    max_logprob_diff: float | None = Field(description="null: no limit")
    out: str | None
    experiment: str | None


class QualityResult(Result):
    """`quality.json` of `harness quality`."""

    kind: Literal["quality"] = "quality"
    run_id: str
    experiment: str
    finished: str = Field(description="when it was written, ISO 8601")
    config: QualitySettings
    environment: dict[str, Any]
    baseline: str
    comparisons: list[Agreement]
    prompts: list[str]
    answers: dict[str, list[AnswerTokens]]


class RunInfo(Result):
    """`run.json`: what was asked, the run's identity and where it ran. The experiment's own
    options (stacks, workload, rates, trials...) sit beside these fields, under their names."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["comparison", "capacity", "quality", "scorecard", "mechanisms",
                  "coldstart"] = Field(
        default="comparison", description="the experiment (absent in early comparison runs)")
    out: str = Field(description="the results folder")
    experiment: str | None = Field(default=None, description="the MLflow experiment it is "
                                   "logged to (absent in early runs: the workload's name)")
    run_id: str | None = Field(default=None, description="identifies the run in MLflow, "
                               "however often logged (absent in early runs)")
    started: str = Field(description="ISO 8601 with the time zone")
    environment: dict[str, Any] = Field(description="git commit, hardware, package versions")

    @property
    def results_id(self) -> str:
        """What makes a run one run in MLflow, however often it is logged: its run_id, or for
        an early run without one, a digest of what it asked."""
        if self.run_id:
            return self.run_id
        asked = json.dumps(self.model_dump(mode="json", exclude_unset=True), sort_keys=True)
        return hashlib.sha256(asked.encode()).hexdigest()[:32]


R = TypeVar("R", bound=Result)


def read_result(path: Path, model: type[R]) -> R:
    """A results file read back as its model; ResultsError says what is wrong with it."""
    try:
        return model.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path} is missing: is {path.parent} a folder written by "
                           "`harness run` or `harness capacity`?") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ResultsError(f"{path} is not a {model.__name__}: {where}: {first['msg']}") \
            from None
