"""The tables the harness prints. `comparison_table`: each stack's figures and its ratio to the
baseline (the first stack), all read from the summary, never recomputed here.
`quantization_table`: a quantized checkpoint's per-layer weight errors. `quality_table`: greedy
answers compared with the baseline's."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from harness.ablation import ABLATION_LABELS
from harness.quantize import QuantizeReport

# (summary key, label, unit): seconds are shown in milliseconds.
ROWS = [
    ("throughput_qps", "throughput", "QPS"),
    ("goodput_qps", "goodput (within SLO)", "QPS"),
    ("success_rate", "success rate", ""),
    ("latency_p50_s", "latency P50 (from schedule)", "ms"),
    ("latency_p90_s", "latency P90", "ms"),
    ("latency_p99_s", "latency P99", "ms"),
    ("latency_p999_s", "latency P99.9", "ms"),
    ("service_p50_s", "service P50 (from send)", "ms"),
    ("service_p99_s", "service P99", "ms"),
    ("ttft_p50_s", "TTFT P50", "ms"),
    ("ttft_p99_s", "TTFT P99", "ms"),
    ("output_tokens_per_s", "output tokens/s", ""),
    ("send_lag_p99_s", "send lag P99 (load generator)", "ms"),
    ("requests", "requests measured", ""),
]


def show(value: Any, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if unit == "ms":
        return f"{value * 1000:,.1f} ms"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.4f}" if value < 10 else f"{value:,.1f}"


def comparison_table(summary: dict[str, Any]) -> Table:
    stacks: dict[str, dict[str, Any]] = summary["stacks"]
    baseline = summary["baseline"]
    table = Table(title=f"{summary['workload']} · run {summary['run']}")
    table.add_column("metric")
    for name in stacks:
        table.add_column(name, justify="right")
    others = [name for name in summary["ratios"]]
    for name in others:
        table.add_column(f"{name} ÷ {baseline}", justify="right")
    for key, label, unit in ROWS:
        if not any(key in figures for figures in stacks.values()):
            continue
        cells = [show(figures.get(key), unit) for figures in stacks.values()]
        cells += [show_ratio(summary["ratios"][name].get(key)) for name in others]
        table.add_row(label, *cells)
    return table


def show_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.2f}×"


# Past this, the load generator itself was late often enough to colour the headline latency.
SEND_LAG_WARN_S = 0.010


def late_sender_warnings(summary: dict[str, Any]) -> list[str]:
    """One line per stack whose load generator sent late: its latency from schedule includes
    that lateness (rightly, for the user's view, but not the stack's doing alone)."""
    lines = []
    for name, figures in summary["stacks"].items():
        lag = figures.get("send_lag_p99_s")
        if lag is not None and lag > SEND_LAG_WARN_S:
            lines.append(
                f"{name}: the load generator sent late (send lag P99 {lag * 1000:.0f} ms): it "
                "shared the CPU with the stack. Latency from schedule includes that wait; "
                "compare service latency, or run the load generator on other cores or "
                "machines (--workers, or Locust workers elsewhere).")
    return lines


def quantization_table(report: QuantizeReport) -> Table:
    """Per layer, the relative weight error ‖W − deq(q(W))‖ / ‖W‖ with per-channel and
    per-tensor scales, and how many times smaller per-channel makes it."""
    table = Table(title=f"{report.scheme} weight reconstruction error, per layer")
    for column in ("layer", "shape", "per-channel", "per-tensor", "tensor ÷ channel"):
        table.add_column(column, justify="left" if column == "layer" else "right")
    for layer in report.layers:
        table.add_row(layer.layer, "×".join(map(str, layer.shape)), f"{layer.channel:.3%}",
                      f"{layer.tensor:.3%}",
                      f"{layer.tensor / layer.channel:.2f}×" if layer.channel else "–")
    return table


def quality_table(result: dict[str, Any]) -> Table:
    """Each stack's agreement with the baseline's greedy answers, and its verdict."""
    config = result["config"]
    table = Table(title=f"greedy answers vs {result['baseline']}: {config['prompts']} prompts, "
                        f"{config['max_tokens']} tokens each")
    for column in ("stack", "token agreement", "exact answers", "first divergence (mean/min)",
                   "|Δ log p| mean", "|Δ log p| max", "verdict"):
        table.add_column(column, justify="left" if column == "stack" else "right")
    for row in result["comparisons"]:
        table.add_row(
            row["stack"], f"{row['token_agreement']:.2%}", f"{row['exact_match_rate']:.2%}",
            f"{row['first_divergence_mean']:.1f} / {row['first_divergence_min']}",
            show(row["logprob_diff_mean"], ""), show(row["logprob_diff_max"], ""),
            "[green]PASS[/green]" if row["passed"] else "[red]FAIL[/red]")
    return table


def ablation_table(summary: dict[str, Any]) -> Table | None:
    """Each optimization's share: the full stack's figure ÷ its variant without it."""
    ablation = summary.get("ablation")
    if not ablation:
        return None
    table = Table(title=f"what each optimization of {ablation['stack']} contributes "
                        f"({ablation['stack']} ÷ the variant without it)")
    table.add_column("optimization")
    table.add_column("variant without it")
    for column in ("throughput", "goodput", "P50", "P99", "success"):
        table.add_column(column, justify="right")
    for optimization, row in ablation["contributions"].items():
        table.add_row(ABLATION_LABELS.get(optimization, optimization), row["variant"],
                      *[show_ratio(row.get(metric)) for metric in (
                          "throughput_qps", "goodput_qps", "latency_p50_s", "latency_p99_s",
                          "success_rate")])
    return table


def show_qps(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return "–"
    interval = f" [{low:,.1f}, {high:,.1f}]" if low is not None and high is not None else ""
    return f"{value:,.1f}{interval}"


def capacity_table(summary: dict[str, Any]) -> Table:
    """Each stack's capacity at the SLO with its interval, per replica, each trial's figure,
    and what the status says; read from the summary."""
    slo = summary["slo"]
    table = Table(title=f"capacity at P99 ≤ {slo['p99_s'] * 1000:,.0f} ms and success ≥ "
                        f"{slo['min_success']:.2%} · {summary['workload']} · "
                        f"run {summary['run']}")
    for column in ("stack", "capacity QPS [95% CI]", "per replica", "each trial", "status"):
        table.add_column(column, justify="left" if column in ("stack", "status") else "right")
    for name, row in summary["stacks"].items():
        per_replica = ("unknown" if row.get("replicas") is None
                       else show_qps(row["per_replica_capacity_qps"],
                                     row.get("per_replica_ci_low"),
                                     row.get("per_replica_ci_high")))
        trials = ", ".join("fails" if trial["capacity_qps"] is None
                           else f"{trial['capacity_qps']:g}" for trial in row["trials"])
        status = row["status"].replace("_", " ")
        if row["status"] != "measured":
            status = f"[yellow]{status}[/yellow]: {row['note']}"
        table.add_row(name, show_qps(row["capacity_qps"], row["ci_low"], row["ci_high"]),
                      per_replica, trials, status)
    return table


def capacity_verdicts(summary: dict[str, Any]) -> list[str]:
    """One line per ratio to the baseline: the value, its interval and what it allows."""
    return [ratio["verdict"] + (f" ({ratio['method']})" if ratio.get("method") else "")
            for ratio in summary.get("ratios", {}).values()]


def capacity_ablation_table(summary: dict[str, Any]) -> Table | None:
    """Each optimization's share of capacity: the full stack's ÷ its variant's without it."""
    ablation = summary.get("ablation")
    if not ablation:
        return None
    table = Table(title=f"what each optimization of {ablation['stack']} contributes to "
                        f"capacity ({ablation['stack']} ÷ the variant without it)")
    for column in ("optimization", "variant without it", "capacity ×", "95% CI", "verdict"):
        table.add_column(column, justify="right" if "×" in column or "CI" in column
                         else "left")
    for optimization, row in ablation["contributions"].items():
        interval = ("–" if row["ci_low"] is None
                    else f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]")
        table.add_row(ABLATION_LABELS.get(optimization, optimization), row["baseline"],
                      show_ratio(row["value"]), interval, contribution_verdict(row))
    return table


def contribution_verdict(row: dict[str, Any]) -> str:
    """The ablation verdict in a table cell's words; the ratio and interval sit beside it."""
    if row["ci_low"] is None or row["ci_high"] is None:
        return "one trial: no interval"
    if row["ci_low"] > 1:
        return "[green]adds capacity[/green]"
    if row["ci_high"] < 1:
        return "[red]costs capacity[/red]"
    return "too close to call"


# Below this many requests in a probe's window, P99 is their maximum or next to it.
FEW_REQUESTS = 100


def capacity_warnings(summary: dict[str, Any]) -> list[str]:
    """What makes the capacity less steady than it looks: probes too short for their P99."""
    judged = [probe for row in summary["stacks"].values() for probe in row["probes"]
              if not probe["stopped_early"]]
    few = [probe for probe in judged if probe["requests"] < FEW_REQUESTS]
    if not few:
        return []
    return [f"{len(few)} of {len(judged)} probes judged whole had fewer than {FEW_REQUESTS} "
            "requests in their window, where P99 is the slowest request or next to it: one "
            "slow request decides such a probe; a longer --duration gives a steadier capacity"]
