"""Capacity's tables and lines, formatted once for the CLI and the dashboard: each stack's
capacity at the SLO with its interval, the ratio verdicts, what each optimization contributes,
and every probe. Read from the typed capacity summary, never recomputed."""

from __future__ import annotations

from dataclasses import dataclass

from harness.experiments.ablation import ABLATION_LABELS
from harness.measure.alike import ALIKE_MARGIN
from harness.measure.metrics import finished_success
from harness.report.figures import probes_frame
from harness.report.results import CapacityRatio, CapacitySummary, StackCapacity
from harness.report.tables import NONE, ReportTable, missing, show_ratio

# Below this many requests in a probe's window, P99 is their maximum or next to it.
FEW_REQUESTS = 100


def show_qps(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return NONE
    interval = f" [{low:,.1f}, {high:,.1f}]" if low is not None and high is not None else ""
    return f"{value:,.1f}{interval}"


def trial_capacities(row: StackCapacity) -> str:
    return ", ".join("fails" if trial.capacity_qps is None else f"{trial.capacity_qps:g}"
                     for trial in row.trials)


def capacity_caption(summary: CapacitySummary) -> str:
    slo, search = summary.slo, summary.search
    return (f"Capacity run `{summary.run}` · workload `{summary.workload}` · a rate passes "
            f"when P99 ≤ {slo.p99_s * 1000:,.0f} ms and success ≥ {slo.min_success:.2%} · "
            f"probes of {search.duration_s:g} s after {search.warmup_s:g} s of warm-up · "
            f"{summary.trials} trial(s), each bracketed to {search.tolerance:.0%}")


def capacity_table(summary: CapacitySummary) -> ReportTable:
    """Each stack's capacity at the SLO with its interval, per replica, each trial's figure,
    and what the status says."""
    rows = []
    for name, row in summary.stacks.items():
        per_replica = ("unknown" if row.replicas is None
                       else show_qps(row.per_replica_capacity_qps, row.per_replica_ci_low,
                                     row.per_replica_ci_high))
        status = row.status.replace("_", " ")
        if row.status != "measured":
            status = f"[yellow]{status}[/yellow]: {row.note}"
        rows.append([name, show_qps(row.capacity_qps, row.ci_low, row.ci_high), per_replica,
                     trial_capacities(row), status])
    slo = summary.slo
    return ReportTable(f"capacity at P99 ≤ {slo.p99_s * 1000:,.0f} ms and success ≥ "
                       f"{slo.min_success:.2%} · {summary.workload} · run {summary.run}",
                       ["stack", "capacity QPS [95% CI]", "per replica", "each trial",
                        "status"], rows, left=("stack", "status"))


def capacity_verdicts(summary: CapacitySummary) -> list[str]:
    """One line per ratio to the baseline: the value, its interval and what it allows."""
    return [ratio.verdict + (f" ({ratio.method})" if ratio.method else "")
            for ratio in summary.ratios.values()]


def contribution_verdict(ratio: CapacityRatio) -> str:
    """The ablation verdict in a table cell's words; the ratio and interval sit beside it."""
    return {"above": "[green]adds capacity[/green]", "below": "[red]costs capacity[/red]",
            "alike": f"no effect beyond ±{ALIKE_MARGIN:.0%}", "includes": "too close to call",
            None: "one trial: no interval"}[ratio.side]


def capacity_ablation_table(summary: CapacitySummary) -> ReportTable | None:
    """Each optimization's share of capacity: the full stack's ÷ its variant's without it."""
    ablation = summary.ablation
    if ablation is None:
        return None
    rows = [[ABLATION_LABELS.get(name, name), row.baseline, show_ratio(row.value),
             NONE if row.ci_low is None or row.ci_high is None
             else f"[{row.ci_low:.2f}, {row.ci_high:.2f}]", contribution_verdict(row)]
            for name, row in ablation.contributions.items()]
    return ReportTable(f"what each optimization of {ablation.stack} contributes to capacity "
                       f"({ablation.stack} ÷ the variant without it)",
                       ["optimization", "variant without it", "capacity ×", "95% CI",
                        "verdict"], rows, left=("optimization", "variant without it",
                                                "verdict"))


def probes_table(summary: CapacitySummary) -> ReportTable:
    """Every probe of every search, by stack, trial and order: what was offered and how the
    stack did (success over the requests the probe finished, as the chart shows it)."""
    rows = []
    for stack, row in summary.stacks.items():
        frame = probes_frame(row.probes)
        success: list[float] = list(finished_success(frame)) if len(frame) else []
        for probe, finished in zip(row.probes, success, strict=True):
            rows.append([stack, str(probe.trial), str(probe.probe), f"{probe.rate_qps:g}",
                         "yes" if probe.passed else "no", f"{probe.requests:,}",
                         ms(probe.latency_p50_s), ms(probe.latency_p99_s),
                         NONE if probe.latency_over_slo is None else
                         f"{probe.latency_over_slo:,} ({probe.latency_over_slo_allowed:,})",
                         NONE if missing(finished) else f"{finished:.2%}",
                         f"{probe.throughput_qps:,.1f}",
                         "yes" if probe.stopped_early else "no"])
    return ReportTable("every probe", ["stack", "trial", "probe", "offered QPS", "passed",
                                       "requests", "P50 ms", "P99 ms",
                                       "over SLO (allowed)",
                                       "success (of finished)", "throughput QPS",
                                       "stopped early"], rows, left=("stack",))


def ms(value: float | None) -> str:
    return NONE if value is None else f"{value * 1000:,.0f}"


@dataclass(frozen=True, slots=True)
class CapacityHeadline:
    label: str
    value: str
    help: str


def capacity_headlines(summary: CapacitySummary) -> list[CapacityHeadline]:
    """Each stack's capacity (per replica where its replicas are known), then each ratio."""
    shown = []
    for stack, row in summary.stacks.items():
        value, low, high = row.shown_capacity()
        shown.append(CapacityHeadline(
            f"{stack}: capacity{' per replica' if row.replicas is not None else ''}",
            row.status.replace("_", " ") if value is None else f"{value:,.1f} QPS",
            row.note + (f"; 95 % interval [{low:,.1f}, {high:,.1f}]"
                        if low is not None and high is not None else "")))
    for ratio in summary.ratios.values():
        shown.append(CapacityHeadline(f"{ratio.stack} ÷ {ratio.baseline}",
                                      show_ratio(ratio.value), ratio.method or ratio.verdict))
    return shown


def decisive(ratio: CapacityRatio) -> bool | None:
    """Whether a ratio decides: its interval excludes 1, or lies within the equivalence
    margin (None: there is no ratio)."""
    return None if ratio.value is None else ratio.side in ("above", "below", "alike")


def capacity_warnings(summary: CapacitySummary) -> list[str]:
    """What makes the capacity less steady than it looks: probes too short for their P99."""
    judged = [probe for row in summary.stacks.values() for probe in row.probes
              if not probe.stopped_early]
    few = [probe for probe in judged if probe.requests < FEW_REQUESTS]
    if not few:
        return []
    return [f"{len(few)} of {len(judged)} probes judged whole had fewer than {FEW_REQUESTS} "
            "requests in their window, where P99 is the slowest request or next to it: one "
            "slow request decides such a probe; a longer --duration gives a steadier capacity"]
