"""The comparison's charts, as Plotly figures: the dashboard shows them and every comparison
run keeps them as one HTML artifact. The numbers come from `harness.metrics`; this module only
draws them (latencies in milliseconds, rates in requests per second, the SLO as a line)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.io import to_html

from harness.metrics import Window, error_timeline, latency_cdf, per_second

Records = Mapping[str, pd.DataFrame]  # stack name -> its records, every trial
Series = Mapping[str, pd.DataFrame]  # stack name -> its `per_second` series
MS = 1000.0
SLO_STYLE: dict[str, Any] = {"line_dash": "dash", "line_color": "crimson", "line_width": 2}


def _layout(figure: go.Figure, title: str, x: str, y: str) -> go.Figure:
    figure.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white",
                         legend_title_text="stack", height=420,
                         margin={"l": 60, "r": 20, "t": 60, "b": 50})
    return figure


def latency_cdf_figure(records: Records, window: Window, slo_s: float) -> go.Figure:
    figure = go.Figure()
    for stack, frame in records.items():
        cdf = latency_cdf(frame, window)
        figure.add_trace(go.Scatter(x=cdf["latency_s"] * MS, y=cdf["fraction"] * 100,
                                    mode="lines", name=stack))
    figure.add_vline(x=slo_s * MS, annotation_text=f"SLO {slo_s * MS:,.0f} ms",
                     annotation_position="bottom right", **SLO_STYLE)
    figure.add_hline(y=99, line_dash="dot", line_color="gray", annotation_text="P99")
    figure.update_xaxes(type="log")
    return _layout(figure, "End-to-end latency CDF (from scheduled send time)",
                   "latency (ms, log scale)", "requests at or below (%)")


def throughput_figure(series: Series) -> go.Figure:
    figure = go.Figure()
    for stack, seconds in series.items():
        figure.add_trace(go.Scatter(x=seconds["second"], y=seconds["throughput_qps"],
                                    mode="lines+markers", name=stack))
    if series:
        offered = next(iter(series.values()))  # every stack replayed the same schedule
        figure.add_trace(go.Scatter(x=offered["second"], y=offered["offered_qps"],
                                    mode="lines", name="offered", line={"dash": "dot",
                                                                       "color": "gray"}))
    return _layout(figure, "Throughput over time (successful requests finished per second)",
                   "time since run start (s)", "throughput (QPS)")


def p99_figure(series: Series, slo_s: float) -> go.Figure:
    figure = go.Figure()
    for stack, seconds in series.items():
        figure.add_trace(go.Scatter(x=seconds["second"], y=seconds["latency_p99_s"] * MS,
                                    mode="lines+markers", name=stack))
    figure.add_hline(y=slo_s * MS, annotation_text=f"SLO {slo_s * MS:,.0f} ms", **SLO_STYLE)
    return _layout(figure, "P99 end-to-end latency over time (by scheduled second)",
                   "time since run start (s)", "P99 latency (ms)")


def replica_share_figure(summary: Mapping[str, Any]) -> go.Figure:
    figure = go.Figure()
    for stack, figures in summary.get("stacks", {}).items():
        share = figures.get("replica_share") or {}
        figure.add_trace(go.Bar(x=list(share), y=[value * 100 for value in share.values()],
                                name=stack))
    figure.update_layout(barmode="group")
    return _layout(figure, "Load share per replica (answered requests)", "replica",
                   "share of requests (%)")


def error_figure(records: Records, window: Window) -> go.Figure:
    figure = go.Figure()
    for stack, frame in records.items():
        timeline = error_timeline(frame, window)
        for error, rows in timeline.groupby("error"):
            figure.add_trace(go.Bar(x=rows["second"], y=rows["count"],
                                    name=f"{stack}: {error}"))
    if not figure.data:
        figure.add_annotation(text="no failed requests", showarrow=False, x=0.5, y=0.5,
                              xref="paper", yref="paper", font={"size": 18})
    figure.update_layout(barmode="stack")
    figure.update_xaxes(range=[window.start_s, window.end_s])
    return _layout(figure, "Failed requests over time (by scheduled second and error class)",
                   "time since run start (s)", "failed requests")


def comparison_figures(records: Records, summary: Mapping[str, Any], window: Window,
                       slo_s: float) -> dict[str, go.Figure]:
    series = {stack: per_second(frame, window) for stack, frame in records.items()}
    return {
        "latency_cdf": latency_cdf_figure(records, window, slo_s),
        "throughput": throughput_figure(series),
        "p99_over_time": p99_figure(series, slo_s),
        "replica_share": replica_share_figure(summary),
        "errors": error_figure(records, window),
    }


def figures_html(figures: Mapping[str, go.Figure], title: str) -> str:
    """One self-contained page (plotly.js embedded once, so it opens offline)."""
    parts = [to_html(figure, full_html=False, include_plotlyjs=index == 0)
             for index, figure in enumerate(figures.values())]
    heading = escape(title)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{heading}</title>"
            f"</head><body><h1>{heading}</h1>{''.join(parts)}</body></html>")
