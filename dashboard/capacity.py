"""The dashboard's capacity tables: each stack's capacity at the SLO with its interval and
status, and every probe the searches made. Read from the capacity summary, never recomputed."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.ablation import ABLATION_LABELS
from harness.figures import finished_success

PROBE_COLUMNS = {"trial": "trial", "probe": "probe", "rate_qps": "offered QPS",
                 "passed": "passed", "requests": "requests", "latency_p50_s": "P50 ms",
                 "latency_p99_s": "P99 ms",
                 "success_rate": "success % (of finished)",
                 "throughput_qps": "throughput QPS",
                 "stopped_early": "stopped early"}


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def capacity_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per stack: capacity and its interval, the same per replica, each trial's
    capacity, status and what it means."""
    rows = []
    for stack, row in summary["stacks"].items():
        rows.append({
            "stack": stack,
            "capacity QPS": _number(row["capacity_qps"]),
            "95% CI low": _number(row["ci_low"]), "95% CI high": _number(row["ci_high"]),
            "replicas": row.get("replicas"),
            "per replica QPS": _number(row["per_replica_capacity_qps"]),
            "each trial": ", ".join("fails" if trial["capacity_qps"] is None
                                    else f"{trial['capacity_qps']:g}"
                                    for trial in row["trials"]),
            "status": row["status"].replace("_", " "),
            "note": row["note"],
        })
    return pd.DataFrame(rows)


def probes_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """Every probe of every search, by stack, trial and order: what was offered and how the
    stack did (latencies in milliseconds; success in percent of the requests the probe
    finished, as the chart shows it)."""
    frames = []
    for stack, row in summary["stacks"].items():
        probes = pd.DataFrame(row["probes"], columns=[*PROBE_COLUMNS, "ok_requests", "errors"])
        frames.append(probes.assign(
            stack=stack,
            latency_p50_s=probes["latency_p50_s"].astype(float) * 1000,
            latency_p99_s=probes["latency_p99_s"].astype(float) * 1000,
            success_rate=finished_success(probes).astype(float) * 100,
            stopped_early=probes["stopped_early"].notna()))
    if not frames:
        return pd.DataFrame(columns=["stack", *PROBE_COLUMNS.values()])
    return pd.concat(frames, ignore_index=True)[["stack", *PROBE_COLUMNS]].rename(
        columns=PROBE_COLUMNS)


def capacity_ablation_frame(summary: dict[str, Any]) -> pd.DataFrame | None:
    """One row per optimization: the full stack's capacity ÷ its variant's without it, with
    the interval; None without an ablation."""
    ablation = summary.get("ablation")
    if not ablation:
        return None
    return pd.DataFrame([{
        "optimization": ABLATION_LABELS.get(name, name), "variant without it": row["baseline"],
        "capacity ×": _number(row["value"]), "95% CI low": _number(row["ci_low"]),
        "95% CI high": _number(row["ci_high"]), "verdict": row["verdict"]}
        for name, row in ablation["contributions"].items()])
