"""The scorecard as a user reads it, formatted once for the CLI and the dashboard: one row per
dimension, each stack's figure with its 95 % interval and how many requests decided it, the
ratio to the baseline, and the verdict. Read from the typed scorecard, never recomputed."""

from __future__ import annotations

from harness.measure.alike import margin_words
from harness.report.scorecard_results import (
    ROW_LABELS,
    MachineCheck,
    Scorecard,
    ScoreFigure,
    ScoreRow,
    SendLag,
)
from harness.report.tables import NONE, ReportTable, missing

UNITS = {"s": "ms", "%": "%", "QPS": "QPS", "seconds": "s"}


def show_number(value: float | None, unit: str) -> str:
    """A figure in its row's shown unit, without the unit: ms, %, QPS, s."""
    if missing(value):
        return "?"
    assert value is not None
    if unit == "s":
        return f"{value * 1000:,.0f}"
    if unit == "seconds":
        return f"{value:,.0f}"
    if unit == "%":
        return f"{value * 100:.1f}"
    return f"{value:,.2f}"


def show_figure(figure: ScoreFigure, unit: str) -> str:
    """`565 [544, 628] ms`: the figure, its interval (`?` for an open side), the unit."""
    if missing(figure.value):
        return NONE
    return (f"{show_number(figure.value, unit)} [{show_number(figure.ci_low, unit)}, "
            f"{show_number(figure.ci_high, unit)}] {UNITS[unit]}")


def show_row_ratio(row: ScoreRow) -> str:
    if missing(row.ratio):
        return NONE
    assert row.ratio is not None
    interval = ("" if missing(row.ratio_ci_low) or missing(row.ratio_ci_high)
                else f" [{row.ratio_ci_low:.2f}, {row.ratio_ci_high:.2f}]")
    return f"{row.ratio:.2f}×{interval}"


def verdict_cell(row: ScoreRow) -> str:
    if row.alike and row.winner is None:
        return f"[green]alike[/green], {margin_words()}"
    if row.winner is None:
        return "[yellow]too close to call[/yellow]"
    return (f"[green]{row.winner}[/green] {'higher' if row.higher_is_better else 'lower'}"
            + (f", {margin_words()}" if row.alike else ""))


def scorecard_table(scorecard: Scorecard) -> ReportTable:
    others = [name for name in scorecard.stacks if name != scorecard.baseline]
    ratio_label = (f"{others[0]} ÷ {scorecard.baseline}" if len(others) == 1
                   else f"÷ {scorecard.baseline}")
    rows = []
    for row in scorecard.rows:
        rows.append([row.label, row.setting,
                     *(show_figure(row.stacks[name], row.unit) if name in row.stacks else NONE
                       for name in scorecard.stacks),
                     show_row_ratio(row), verdict_cell(row),
                     " / ".join(f"{row.stacks[name].requests:,}" for name in scorecard.stacks
                                if name in row.stacks)])
    for part in scorecard.pending:
        rows.append([ROW_LABELS.get(part, part), "not measured",
                     *(NONE for _ in scorecard.stacks), NONE, "[yellow]pending[/yellow]",
                     NONE])
    return ReportTable(f"scorecard · {' vs '.join(scorecard.stacks)} · {scorecard.workload} · "
                       f"SLO P99 ≤ {scorecard.slo_p99_s * 1000:,.0f} ms · run {scorecard.run}",
                       ["dimension", "measured at", *(f"{name} [95% CI]"
                                                      for name in scorecard.stacks),
                        ratio_label, "verdict", "requests deciding"],
                       rows, left=("dimension", "measured at", "verdict"))


def scorecard_lines(scorecard: Scorecard) -> list[str]:
    """Each row's verdict in words, with what decided each stack's figure."""
    lines = []
    for row in scorecard.rows:
        lines.append(f"{row.label}: {row.verdict} ({row.interval_method})")
        for name, figure in row.stacks.items():
            lines.append(f"  {name}: {figure.note}")
    if (said := send_lag_words(scorecard.send_lag)) is not None and said[0]:
        lines.append(said[1])
    if (machine := machine_words(scorecard.machine)) is not None:
        lines.append(machine)
    return lines


def scorecard_warnings(scorecard: Scorecard) -> list[str]:
    """The load generator's lateness, where a verdict could rest on it."""
    said = send_lag_words(scorecard.send_lag)
    return [said[1]] if said is not None and not said[0] else []


def send_lag_words(lag: SendLag | None) -> tuple[bool, str] | None:
    """Whether the load generator kept to its send-lag limit wherever a verdict could rest on
    it, and the line that says so (None: nothing was sent yet)."""
    if lag is None or (lag.worst_p99_s is None and lag.overloaded_worst_p99_s is None):
        return None
    limit = f"{lag.limit_s * 1000:g} ms"
    if lag.worst_p99_s is None:
        words = "load generator: no replay judged whole yet"
    else:
        within = lag.worst_p99_s <= lag.limit_s
        words = (f"load generator: send lag P99 at most {lag.worst_p99_s * 1000:.2f} ms over "
                 f"the {lag.replays} replays judged whole (worst: {lag.worst_where}), "
                 + (f"within its {limit} limit" if within else
                    f"over its {limit} limit: latencies from schedule include its own "
                    "lateness"))
    overloaded = lag.overloaded_worst_p99_s
    if overloaded is not None and overloaded > lag.limit_s:
        words += (f"; of the {lag.overloaded} probes stopped as certain failures, the worst "
                  f"lagged {overloaded * 1000:.2f} ms ({lag.overloaded_where}), ")
        words += (f"and {', '.join(lag.overloaded_late)} may have failed on it: P99 from the "
                  "actual send was within the SLO" if lag.overloaded_late else
                  "but every one over the limit failed from the actual send too (P99 from the "
                  "actual send over the SLO), so no verdict rests on it")
    return lag.held, words


def machine_words(check: MachineCheck | None) -> str | None:
    """The machine's own speed per trial in one line, beside how far the capacities moved."""
    if check is None or not check.yardsticks:
        return None
    said = []
    for yardstick in check.yardsticks.values():
        trials = "; ".join(f"{stack} " + ", ".join("–" if speed is None else f"{speed:.1f}"
                                                   for speed in speeds)
                           for stack, speeds in yardstick.speeds.items())
        words = f"{yardstick.what}: {trials} {yardstick.unit} (the trials "
        words += "–" if yardstick.spread is None else f"{yardstick.spread - 1:.1%} apart"
        if yardstick.largest_drift is not None:
            words += f", {yardstick.largest_drift:.1%} at most within one"
        said.append(words + ")")
    line = "machine, before and after every trial: " + "; ".join(said)
    if check.capacity_spread:
        line += ("; the capacities moved " + ", ".join(
            f"{spread - 1:.0%} ({stack})" for stack, spread in check.capacity_spread.items())
                 + " from a stack's lowest trial to its highest")
    return line

