"""The scorecard's typed result (`scorecard.json`): one row per dimension measured, each
stack's figure with its interval and how many requests decided it, and the row's verdict.
Computed by `harness.measure.scorecard` from what each part of the scorecard wrote."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.report.result_base import Figure, Result

Dimension = Literal["p99_at_load", "success_under_kill", "capacity", "cold_start",
                    "spike_slo", "spike_cost"]
ROW_LABELS: dict[str, str] = {"capacity": "capacity at the SLO",
                              "p99_at_load": "P99 at a fixed load",
                              "success_under_kill": "success under a replica kill",
                              "cold_start": "cold start to serving",
                              "spike_slo": "SLO-violating seconds in a spike",
                              "spike_cost": "replica-seconds in a spike"}


class ScoreFigure(Result):
    """One stack's figure on a row."""

    value: Figure = Field(description="the figure (null: nothing to take it over)")
    ci_low: Figure = Field(description="its 95 % interval (null: no bound, see `note`)")
    ci_high: Figure
    requests: int = Field(description="how many requests decided it")
    trials: list[Figure] = Field(description="the figure of each trial alone, in order")
    note: str = Field(description="what decided it, in words")


class ScoreRow(Result):
    dimension: Dimension
    label: str = Field(description="what the row measures, as shown")
    unit: Literal["s", "%", "QPS", "seconds"] = Field(description="s: a duration, shown in "
                                                      "ms; seconds: a count of seconds")
    higher_is_better: bool
    setting: str = Field(description="how it was measured: load, length, trials")
    stacks: dict[str, ScoreFigure]
    ratio: Figure = Field(description="the other stack's value ÷ the baseline's")
    ratio_ci_low: Figure = Field(default=None, description="its interval: capacity's from "
                                 "paired trials, the others' from the two intervals divided")
    ratio_ci_high: Figure = None
    winner: str | None = Field(description="the stack the row's intervals favour; null: "
                                           "none can be named")
    alike: bool = Field(default=False, description="the stacks differ by less than the "
                        "equivalence margin (harness.measure.alike): a decision, not a tie")
    verdict: str = Field(description="who wins and by how much, or why it cannot be said")
    interval_method: str
    part: str = Field(description="the results folder it was read from, relative to the "
                                  "scorecard's")


class SendLag(Result):
    """The measuring instrument's own check: how late the load generator sent, at its worst.
    A late sender adds its lag to every latency from schedule, so a scorecard whose worst
    send-lag P99 is large measured the load generator's lateness as well as the stacks."""

    worst_p99_s: Figure = Field(description="the largest send-lag P99 of any replay judged "
                                            "whole: every phase trial, every probe not "
                                            "stopped early (null: nothing was sent)")
    worst_where: str = Field(description="which replay it was: stack, trial, phase or rate")
    replays: int = Field(description="how many replays judged whole it was taken over")
    overloaded_worst_p99_s: Figure = Field(default=None, description="the largest of the "
                                           "probes stopped once failing was certain")
    overloaded_where: str = ""
    overloaded: int = Field(default=0, description="how many probes were stopped early")
    overloaded_late: list[str] = Field(default_factory=list, description="those over the "
                                       "limit whose P99 from the actual send was within the "
                                       "SLO: their failure may rest on the lag")
    limit_s: float = Field(description="the send-lag P99 the instrument is held to")

    @property
    def held(self) -> bool:
        """Within the limit wherever a verdict could rest on it: a probe stopped early that
        failed from the actual send too did not fail because of the lag."""
        return ((self.worst_p99_s is None or self.worst_p99_s <= self.limit_s)
                and not self.overloaded_late)


class Yardstick(Result):
    """One fixed piece of work timed on each core before and after every trial."""

    what: str = Field(description="the work, in words")
    unit: str
    speeds: dict[str, list[Figure]] = Field(description="per stack, each trial's speed: the "
                                            "mean over cores, before and after (null: not "
                                            "measured)")
    spread: Figure = Field(description="the fastest trial's speed ÷ the slowest's")
    largest_drift: Figure = Field(description="the largest change within one trial, after ÷ "
                                              "before, as |1 − ratio|")


class MachineCheck(Result):
    """The machine's own speed in each trial (`harness.measure.machine_speed`), beside how far
    each stack's capacity moved: a machine that kept its speed while a stack's capacity moved
    puts that noise elsewhere."""

    yardsticks: dict[str, Yardstick] = Field(description="by name: `python` (a pure-Python "
                                             "loop), `memory` (a large memory copy) and "
                                             "`wakeup` (a round trip between two cores)")
    capacity_spread: dict[str, float] = Field(default_factory=dict, description="per stack, "
                                              "its highest capacity ÷ its lowest, for contrast")


class Scorecard(Result):
    """`scorecard.json`: rewritten after every trial, so a scorecard cut short keeps its rows."""

    kind: Literal["scorecard"] = "scorecard"
    run: str
    workload: str
    baseline: str
    stacks: list[str]
    slo_p99_s: float
    rows: list[ScoreRow]
    pending: list[str] = Field(description="parts not measured (yet): their rows are missing")
    send_lag: SendLag | None = Field(default=None, description="the load generator's worst "
                                     "send lag over every replay (null: none yet)")
    machine: MachineCheck | None = Field(default=None, description="the machine's own speed "
                                         "per trial (null: not measured)")
