"""The mechanisms as a user reads them, formatted once for the CLI and the dashboard: per
optimization, where it binds, the figure without it and with it (each trial's too), the gain with
its 95 % interval and the verdict. Read from the typed result, never recomputed."""

from __future__ import annotations

from harness.report.mechanisms_results import MechanismResult, Mechanisms, VariantFigure
from harness.report.tables import NONE, ReportTable, missing


def show_value(value: float | None, unit: str) -> str:
    if missing(value):
        return "?"
    assert value is not None
    if unit == "s":
        return f"{value * 1000:,.0f} ms"
    return f"{value:,.1f} {unit}"


def show_variant(figure: VariantFigure, unit: str) -> str:
    """`2,694 tokens/s (2,701, 2,650, 2,730)`: the geometric mean, then each trial's."""
    trials = ", ".join(show_value(value, unit).split(" ")[0] for value in figure.trials)
    return f"{show_value(figure.value, unit)} ({trials})"


def show_gain(result: MechanismResult) -> str:
    if missing(result.gain):
        return NONE
    interval = ("" if missing(result.gain_ci_low) or missing(result.gain_ci_high)
                else f" [{result.gain_ci_low:.2f}, {result.gain_ci_high:.2f}]")
    return f"{result.gain:.2f}×{interval}"


def verdict_cell(result: MechanismResult) -> str:
    colour = {"helps": "green", "hurts": "red"}.get(result.outcome, "yellow")
    return f"[{colour}]{result.outcome}[/{colour}]"


def mechanisms_table(mechanisms: Mechanisms) -> ReportTable:
    rows = [[result.label, result.metric_label, show_variant(result.off, result.unit),
             show_variant(result.on, result.unit), show_gain(result), verdict_cell(result)]
            for result in mechanisms.mechanisms]
    rows += [[name, NONE, NONE, NONE, NONE, "[yellow]pending[/yellow]"]
             for name in mechanisms.pending]
    return ReportTable(f"each optimization alone, where it binds · added to {mechanisms.baseline} "
                       f"as {mechanisms.source} sets it · run {mechanisms.run}",
                       ["optimization", "figure", "without it", "with it", "gain [95% CI]",
                        "verdict"], rows, left=("optimization", "figure", "verdict"))


def mechanisms_lines(mechanisms: Mechanisms) -> list[str]:
    """Each mechanism's verdict in words, how it was measured and what limits it."""
    lines = []
    for result in mechanisms.mechanisms:
        lines.append(f"{result.label} ({result.bottleneck}): {result.verdict}")
        lines.append(f"  {result.off.stack} → {result.on.stack}; measured at: {result.setting}")
        lines += [f"  note: {note}" for note in result.notes]
    return lines
