"""The tables a user reads, formatted once: the CLI prints them with rich, the dashboard shows
them as frames. Every figure comes from a typed summary (`harness.report.results`), never
recomputed here; this module only chooses units, rounding and words.

`comparison_table`: each stack's figures, its ratio to the baseline and who wins.
`ablation_table`: what each optimization contributes. `quality_table`: greedy answers compared
with the baseline's. `quantization_table`: a quantized checkpoint's per-layer weight errors.
Capacity's tables are in `harness.report.capacity_tables`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.table import Table
from rich.text import Text

from harness.experiments.ablation import ABLATION_LABELS
from harness.report.results import ComparisonSummary, QualityResult
from stacks.models.prepare import QuantizeReport

NONE = "–"
# (summary key, label, unit, higher is better; None: no stack wins it, it is context — how
# many requests decided the figures, how late the load generator sent). Seconds in ms.
ROWS: list[tuple[str, str, str, bool | None]] = [
    ("throughput_qps", "throughput", "QPS", True),
    ("goodput_qps", "goodput (within SLO)", "QPS", True),
    ("success_rate", "success rate", "%", True),
    ("success_rate_low", "success rate, 95% lower bound", "%", True),
    ("latency_p50_s", "latency P50 (from schedule)", "ms", False),
    ("latency_p90_s", "latency P90", "ms", False),
    ("latency_p99_s", "latency P99", "ms", False),
    ("latency_p999_s", "latency P99.9", "ms", False),
    ("service_p50_s", "service P50 (from send)", "ms", False),
    ("service_p99_s", "service P99", "ms", False),
    ("ttft_p50_s", "TTFT P50", "ms", False),
    ("ttft_p99_s", "TTFT P99", "ms", False),
    ("output_tokens_per_s", "output tokens/s", "", True),
    ("send_lag_p99_s", "send lag P99 (load generator)", "ms", None),
    ("latency_over_slo", "requests over the SLO", "", None),
    ("latency_over_slo_allowed", "... allowed for P99 ≤ SLO", "", None),
    ("requests", "requests measured", "", None),
]
TIE = "tie"
# A stack wins a metric only when it beats every other by more than this fraction: at an
# offered load both stacks can carry, throughputs differ by run-to-run noise, not by merit.
WIN_MARGIN = 0.02
# Past this, the load generator itself was late often enough to colour the headline latency.
SEND_LAG_WARN_S = 0.010


@dataclass(frozen=True, slots=True)
class ReportTable:
    """Cells already formatted (rich markup allowed); `left` columns hold words, the rest
    figures."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    left: tuple[str, ...] = ()

    def rich(self) -> Table:
        table = Table(title=self.title)
        for column in self.columns:
            table.add_column(column, justify="left" if column in self.left else "right")
        for row in self.rows:
            table.add_row(*row)
        return table

    def frame(self) -> pd.DataFrame:
        """The same cells as plain text, for the dashboard."""
        return pd.DataFrame([[Text.from_markup(cell).plain for cell in row]
                             for row in self.rows], columns=self.columns)


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def show(value: Any, unit: str = "") -> str:
    if missing(value):
        return NONE
    if unit == "ms":
        return f"{value * 1000:,.1f} ms"
    if unit == "%":  # three decimals: 99.985 % must not read as the 99.99 % target
        return f"{value:.3%}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.4f}" if value < 10 else f"{value:,.1f}"


def show_ratio(value: float | None) -> str:
    return NONE if missing(value) else f"{value:.2f}×"


def winner(values: dict[str, float | None], higher_is_better: bool) -> str:
    """The stack that beats every other by more than WIN_MARGIN, TIE, or – with fewer than
    two figures."""
    known = {stack: float(value) for stack, value in values.items()
             if value is not None and not missing(value)}
    if len(known) < 2:
        return NONE
    ranked = sorted(known.items(), key=lambda item: item[1], reverse=higher_is_better)
    (leader, best), (_, runner_up) = ranked[0], ranked[1]
    scale = max(abs(best), abs(runner_up))
    if scale == 0 or abs(best - runner_up) / scale <= WIN_MARGIN:
        return TIE
    return leader


def comparison_table(summary: ComparisonSummary) -> ReportTable:
    stacks = {name: figures.model_dump(exclude_unset=True)
              for name, figures in summary.stacks.items()}
    baseline, others = summary.baseline, list(summary.ratios)
    rows = []
    for key, label, unit, higher_is_better in ROWS:
        if not any(key in figures for figures in stacks.values()):
            continue
        values = {name: figures.get(key) for name, figures in stacks.items()}
        rows.append([label, *[show(value, unit) for value in values.values()],
                     *[show_ratio(summary.ratios[name].get(key)) for name in others],
                     NONE if higher_is_better is None else winner(values, higher_is_better)])
    return ReportTable(f"{summary.workload} · run {summary.run}",
                       ["metric", *stacks, *[f"{name} ÷ {baseline}" for name in others],
                        "winner"], rows, left=("metric", "winner"))


def comparison_caption(summary: ComparisonSummary, name: str) -> str:
    window = summary.window
    return (f"Run `{name}` · workload `{summary.workload}` · measured {window.length_s:g} s "
            f"after {window.start_s:g} s of warm-up · SLO {summary.slo_s * 1000:,.0f} ms · "
            f"schedule sha256 `{summary.schedule_sha256[:12]}`")


@dataclass(frozen=True, slots=True)
class Headline:
    label: str
    value: str
    change: str | None  # against the baseline, signed, for a coloured delta
    higher_is_better: bool


def headlines(summary: ComparisonSummary) -> list[Headline]:
    """The first other stack's throughput, P99 and success, with the change from the
    baseline."""
    others = [name for name in summary.stacks if name != summary.baseline]
    if not others:
        return []
    other, shown = others[0], []
    for key, label, unit in (("throughput_qps", "throughput", "QPS"),
                             ("latency_p99_s", "latency P99", "ms"),
                             ("success_rate", "success rate", "%")):
        ratio = summary.ratios.get(other, {}).get(key)
        value = getattr(summary.stacks[other], key)
        shown.append(Headline(f"{other}: {label}", show(value, unit) if unit != "QPS"
                              else f"{show(value)} QPS",
                              None if ratio is None or missing(ratio) else
                              f"{(ratio - 1) * 100:+.1f} % vs {summary.baseline}",
                              key != "latency_p99_s"))
    return shown


def late_sender_warnings(summary: ComparisonSummary) -> list[str]:
    """One line per stack whose load generator sent late: its latency from schedule includes
    that lateness (rightly, for the user's view, but not the stack's doing alone)."""
    return [f"{name}: the load generator sent late (send lag P99 {lag * 1000:.0f} ms): it "
            "shared the CPU with the stack. Latency from schedule includes that wait; compare "
            "service latency, or run the load generator on other cores or machines "
            "(--workers, or Locust workers elsewhere)."
            for name, figures in summary.stacks.items()
            if (lag := figures.send_lag_p99_s) is not None and lag > SEND_LAG_WARN_S]


def ablation_table(summary: ComparisonSummary) -> ReportTable | None:
    """Each optimization's share: the full stack's figure ÷ its variant without it."""
    ablation = summary.ablation
    if ablation is None:
        return None
    rows = [[ABLATION_LABELS.get(name, name), row.variant,
             *[show_ratio(value) for value in (row.throughput_qps, row.goodput_qps,
                                               row.latency_p50_s, row.latency_p99_s,
                                               row.success_rate)]]
            for name, row in ablation.contributions.items()]
    return ReportTable(f"what each optimization of {ablation.stack} contributes "
                       f"({ablation.stack} ÷ the variant without it)",
                       ["optimization", "variant without it", "throughput ×", "goodput ×",
                        "P50 ×", "P99 ×", "success ×"], rows,
                       left=("optimization", "variant without it"))


def quality_table(result: QualityResult) -> ReportTable:
    """Each stack's agreement with the baseline's greedy answers, and its verdict."""
    config = result.config
    rows = [[row.stack, show(row.token_agreement, "%"), show(row.exact_match_rate, "%"),
             f"{row.first_divergence_mean:.1f} / {row.first_divergence_min}",
             show(row.logprob_diff_mean), show(row.logprob_diff_max),
             "[green]PASS[/green]" if row.passed else "[red]FAIL[/red]"]
            for row in result.comparisons]
    return ReportTable(f"greedy answers vs {result.baseline}: {config.prompts} prompts, "
                       f"{config.max_tokens} tokens each",
                       ["stack", "token agreement", "exact answers",
                        "first divergence (mean/min)", "|Δ log p| mean", "|Δ log p| max",
                        "verdict"], rows, left=("stack",))


def quantization_table(report: QuantizeReport) -> ReportTable:
    """Per layer, the relative weight error ‖W − deq(q(W))‖ / ‖W‖ with per-channel and
    per-tensor scales, and how many times smaller per-channel makes it."""
    rows = [[layer.layer, "×".join(map(str, layer.shape)), f"{layer.channel:.3%}",
             f"{layer.tensor:.3%}",
             f"{layer.tensor / layer.channel:.2f}×" if layer.channel else NONE]
            for layer in report.layers]
    return ReportTable(f"{report.scheme} weight reconstruction error, per layer",
                       ["layer", "shape", "per-channel", "per-tensor", "tensor ÷ channel"],
                       rows, left=("layer",))
