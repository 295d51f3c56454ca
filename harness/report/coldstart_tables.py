"""The cold-start report as a user reads it, formatted once for the CLI and the dashboard: per
stack and cache state each phase's mean with its 95 % interval, then the eager ÷ lazy ratios
against their goals. Read from the typed result, never recomputed."""

from __future__ import annotations

from harness.report.coldstart_results import PHASE_LABELS, ColdStartResult, PhaseFigure
from harness.report.tables import ReportTable, missing


def show_phase(figure: PhaseFigure, percent: bool = False) -> str:
    def one(value: float | None) -> str:
        if missing(value):
            return "?"
        assert value is not None
        return f"{value:.1%}" if percent else f"{value:.2f} s"

    interval = ("" if missing(figure.ci_low) else
                f" [{one(figure.ci_low)}, {one(figure.ci_high)}]")
    return one(figure.value) + interval


def coldstart_table(result: ColdStartResult) -> ReportTable:
    phases = [*PHASE_LABELS, "total_s"]
    columns = ["stack", "cache", *[PHASE_LABELS.get(phase, "to first answer")
                                   for phase in phases], "fetched ÷ image"]
    rows = [[f"{row.stack} ({row.mode})", row.cache,
             *[show_phase(row.phases[phase]) for phase in phases],
             show_phase(row.fetched_fraction, percent=True)]
            for row in result.summaries]
    return ReportTable(f"Cold start, one replica: mean over {result.trials} trial(s) "
                       f"[95 % interval]; registry {result.registry.bandwidth_mbps:g} Mbit/s, "
                       f"{result.registry.latency_ms:g} ms", columns, rows,
                       left=("stack", "cache"))


def coldstart_ratio_table(result: ColdStartResult) -> ReportTable | None:
    if not result.ratios:
        return None
    rows = []
    for ratio in result.ratios:
        interval = ("" if missing(ratio.ci_low) else
                    f" [{ratio.ci_low:.2f}, {ratio.ci_high:.2f}]")
        goal = "" if ratio.goal is None else f"≥ {ratio.goal:g}×"
        label = PHASE_LABELS.get(ratio.phase, "scheduled to first answer")
        rows.append([label, ratio.cache, f"{ratio.value:.2f}×{interval}", goal])
    first = result.ratios[0]
    return ReportTable(f"{first.eager} (eager) ÷ {first.lazy} (lazy), paired by trial",
                       ["phase", "cache", "ratio [95 %]", "goal"], rows,
                       left=("phase", "cache"))
