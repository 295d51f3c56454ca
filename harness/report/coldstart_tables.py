"""The cold-start report as a user reads it, formatted once for the CLI and the dashboard: per
stack and cache state each phase's mean with its 95 % interval, then the eager ÷ lazy ratios
against their goals. Read from the typed result, never recomputed."""

from __future__ import annotations

from harness.report.coldstart_results import PHASE_LABELS, ColdStartResult, PhaseFigure
from harness.report.tables import ReportTable, missing


def show_phase(figure: PhaseFigure, percent: bool = False) -> str:
    """`45.6 [22.9, 68.3]`: the mean over trials and its interval (seconds, or a share)."""
    def one(value: float | None) -> str:
        if missing(value):
            return "?"
        assert value is not None
        if percent:
            return f"{value:.1%}"
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"

    interval = ("" if missing(figure.ci_low) else
                f" [{one(figure.ci_low)}, {one(figure.ci_high)}]")
    return one(figure.value) + interval


# Column heads short enough for a terminal; PHASE_LABELS says the same at length.
COLUMNS = {"image_s": "image", "engine_s": "engine → /health",
           "first_response_s": "→ 1st answer", "total_s": "total"}


def coldstart_table(result: ColdStartResult) -> ReportTable:
    phases = list(COLUMNS)
    columns = ["stack", "cache", *COLUMNS.values(), "fetched"]
    rows = [[f"{row.stack} ({_how(result, row.stack, row.mode)})", row.cache,
             *[show_phase(row.phases[phase]) for phase in phases],
             f"{row.fetched_fraction.value:.1%}"]
            for row in result.summaries]
    return ReportTable(f"Cold start of one replica, seconds: mean over "
                       f"{result.trials} trial(s) [95 % interval]; registry "
                       f"{result.registry.bandwidth_mbps:g} Mbit/s, "
                       f"{result.registry.latency_ms:g} ms; fetched: ÷ the image's size",
                       columns, rows,
                       left=("stack", "cache"))


def _how(result: ColdStartResult, stack: str, mode: str) -> str:
    """How the stack started: eager, or lazy with what read the image and whether it
    prefetched."""
    starts = [start for start in result.starts if start.stack == stack]
    file_systems = sorted({start.file_system for start in starts if start.file_system})
    prefetched = any(start.prefetch_blocks for start in starts)
    return ", ".join([mode, *file_systems, *(["prefetch"] if prefetched else [])])


def coldstart_ratio_table(result: ColdStartResult) -> ReportTable | None:
    if not result.ratios:
        return None
    rows = []
    for ratio in result.ratios:
        interval = ("" if missing(ratio.ci_low) else
                    f" [{ratio.ci_low:.2f}, {ratio.ci_high:.2f}]")
        goal = "" if ratio.goal is None else f"≥ {ratio.goal:g}×"
        label = PHASE_LABELS[ratio.phase]
        rows.append([f"{ratio.eager} ÷ {ratio.lazy}", label, ratio.cache,
                     f"{ratio.value:.2f}×{interval}", goal])
    return ReportTable("Eager ÷ lazy, paired by trial",
                       ["stacks", "phase", "cache", "ratio [95 %]", "goal"], rows,
                       left=("stacks", "phase", "cache"))
