"""The charts, as Plotly figures: the dashboard shows them and every comparison or capacity run
keeps them as one HTML artifact. The numbers come from `harness.measure.metrics` and the capacity
summary; this module only draws them (latencies in milliseconds, rates in requests per second,
the SLO as a line)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from html import escape
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import DEFAULT_PLOTLY_COLORS
from plotly.io import to_html

from harness.measure.metrics import (
    Window,
    error_timeline,
    finished_success,
    latency_cdf,
    per_second,
)
from harness.report.coldstart_results import PHASE_LABELS, PHASES, ColdStartResult
from harness.report.figure_axes import LOG_AXIS
from harness.report.mechanisms_results import Mechanisms
from harness.report.results import CapacitySummary, ComparisonSummary, ProbeRow
from harness.report.scaling_figures import scaling_timeline_figure

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
    figure.update_xaxes(**LOG_AXIS)
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


def replica_share_figure(summary: ComparisonSummary) -> go.Figure:
    figure = go.Figure()
    for stack, figures in summary.stacks.items():
        share = figures.replica_share
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


def mark_faults(figure: go.Figure, summary: ComparisonSummary) -> go.Figure:
    """A scenario's faults on a chart over time: a line at each kill, a band over each hang,
    slow-down or overload. Every stack replays the same plan, so each is drawn once."""
    drawn: set[tuple[str, str | None, float]] = set()
    for figures in summary.stacks.values():
        for fault in figures.reliability.faults if figures.reliability else []:
            at = summary.window.start_s + round(fault.at_s, 1)
            if (fault.kind, fault.replica, at) in drawn:
                continue
            drawn.add((fault.kind, fault.replica, at))
            label = fault.kind.replace("_replica", "") + (f" {fault.replica}"
                                                          if fault.replica else "")
            if fault.for_s > 0:
                figure.add_vrect(x0=at, x1=at + fault.for_s, fillcolor="orange", opacity=0.15,
                                 line_width=0, annotation_text=label,
                                 annotation_position="top left")
            else:
                figure.add_vline(x=at, line_dash="dot", line_color="black",
                                 annotation_text=label, annotation_position="top left")
    return figure


def comparison_figures(records: Records, summary: ComparisonSummary,
                       scaling: Mapping[str, list[pd.DataFrame]] | None = None,
                       ) -> dict[str, go.Figure]:
    """`scaling`: per stack, its trials' scaling frames, where its scenario scaled."""
    window, slo_s = summary.window.window(), summary.slo_s
    series = {stack: per_second(frame, window) for stack, frame in records.items()}
    timeline = {"scaling_timeline": scaling_timeline_figure(records, scaling, window, slo_s)} \
        if scaling else {}
    return {**timeline,
        "latency_cdf": latency_cdf_figure(records, window, slo_s),
        "throughput": mark_faults(throughput_figure(series), summary),
        "p99_over_time": mark_faults(p99_figure(series, slo_s), summary),
        "replica_share": replica_share_figure(summary),
        "errors": mark_faults(error_figure(records, window), summary),
    }


def _probe_traces(figure: go.Figure, summary: CapacitySummary,
                  value: Callable[[pd.DataFrame], pd.Series], name: str, dash: str = "solid"
                  ) -> None:
    """One line per stack and trial through its probes, by rate: filled markers passed, open
    ones failed, crosses were stopped once failing was certain (their figures cover only
    what had finished, so a latency there is a lower bound)."""
    for index, (stack, row) in enumerate(summary.stacks.items()):
        colour = DEFAULT_PLOTLY_COLORS[index % len(DEFAULT_PLOTLY_COLORS)]
        probes = probes_frame(row.probes)
        if probes.empty:
            continue
        for order, (_, rows) in enumerate(probes.sort_values("rate_qps").groupby("trial")):
            symbols = ["circle" if passed else "x" if stopped else "circle-open"
                       for passed, stopped in zip(rows["passed"], rows["stopped_early"],
                                                  strict=True)]
            figure.add_trace(go.Scatter(
                x=rows["rate_qps"], y=value(rows).astype(float),
                mode="lines+markers", name=f"{stack} {name}", legendgroup=f"{stack} {name}",
                showlegend=order == 0,
                line={"color": colour, "dash": dash}, marker={"symbol": symbols, "size": 9},
                customdata=np.stack([rows["trial"], rows["probe"], rows["passed"],
                                     rows["stopped_early"].notna()], axis=-1),
                hovertemplate=(f"{stack} {name}: %{{y:,.1f}} at %{{x:g}} QPS<br>trial "
                               "%{customdata[0]}, probe %{customdata[1]}, passed "
                               "%{customdata[2]}, stopped early %{customdata[3]}"
                               "<extra></extra>")))


def probes_frame(probes: list[ProbeRow]) -> pd.DataFrame:
    """Probes as a frame, a column per field (None where a figure is missing)."""
    return pd.DataFrame([probe.model_dump() for probe in probes],
                        columns=list(ProbeRow.model_fields))


def latency_load_figure(summary: CapacitySummary) -> go.Figure:
    figure = go.Figure()
    _probe_traces(figure, summary, lambda rows: rows["latency_p99_s"] * MS, "P99")
    _probe_traces(figure, summary, lambda rows: rows["latency_p50_s"] * MS, "P50", dash="dot")
    slo_s = summary.slo.p99_s
    figure.add_hline(y=slo_s * MS, annotation_text=f"SLO P99 {slo_s * MS:,.0f} ms", **SLO_STYLE)
    figure.update_yaxes(**LOG_AXIS)
    return _layout(figure, "Latency against offered load (each probe; × stopped once failing)",
                   "offered load (QPS)", "end-to-end latency (ms, log scale)")


def success_load_figure(summary: CapacitySummary) -> go.Figure:
    figure = go.Figure()
    _probe_traces(figure, summary, lambda rows: finished_success(rows) * 100, "success")
    target = summary.slo.min_success
    figure.add_hline(y=target * 100, annotation_text=f"target {target:.2%}", **SLO_STYLE)
    return _layout(figure, "Success against offered load (each probe; × over the requests it "
                           "finished)", "offered load (QPS)", "requests succeeded (%)")


def capacity_bar_figure(summary: CapacitySummary) -> go.Figure:
    """Capacity per replica (per stack where its replicas are unknown), with the interval."""
    figure = go.Figure()
    for index, (stack, row) in enumerate(summary.stacks.items()):
        known = row.replicas is not None
        value, low, high = row.shown_capacity()
        error = ({"type": "data", "symmetric": False, "array": [high - value],
                  "arrayminus": [value - low]} if value is not None and low is not None
                 and high is not None else None)
        figure.add_trace(go.Bar(
            x=[f"{stack}{'' if known else ' (whole stack)'}"], y=[value or 0.0],
            error_y=error, name=stack,
            marker_color=DEFAULT_PLOTLY_COLORS[index % len(DEFAULT_PLOTLY_COLORS)],
            text=[f"{value:,.1f}" if value is not None else row.status.replace("_", " ")],
            textposition="outside"))
    return _layout(figure, "Capacity at SLO per replica (95 % interval over trials)", "stack",
                   "sustained QPS per replica")


def capacity_figures(summary: CapacitySummary) -> dict[str, go.Figure]:
    return {"capacity": capacity_bar_figure(summary),
            "latency_vs_load": latency_load_figure(summary),
            "success_vs_load": success_load_figure(summary)}


VERDICT_COLOURS = {"helps": "seagreen", "hurts": "crimson"}


def mechanisms_waterfall(mechanisms: Mechanisms) -> go.Figure:
    """The baseline at 1×, then each optimization's gain stacked on the ones before it, each
    step with its 95 % interval. Each gain was measured alone, where it binds, in
    its own figure (named under its bar): the running product is what they would compound to
    where each binds, not a measurement of the stacks together."""
    figure = go.Figure()
    figure.add_trace(go.Bar(x=[mechanisms.baseline], y=[1.0], base=[0.0], name="baseline",
                            marker_color="lightgray", text=["1×"], textposition="outside"))
    running = 1.0
    for result in mechanisms.mechanisms:
        if result.gain is None:
            continue
        after = running * result.gain
        low = running * (result.gain_ci_low if result.gain_ci_low is not None else result.gain)
        high = running * (result.gain_ci_high if result.gain_ci_high is not None
                          else result.gain)
        figure.add_trace(go.Bar(
            x=[f"+ {result.label}<br>({result.metric_label})"], y=[after - running],
            base=[running], name=result.label,
            marker_color=VERDICT_COLOURS.get(result.outcome, "goldenrod"),
            error_y={"type": "data", "symmetric": False, "array": [high - after],
                     "arrayminus": [after - low]},
            text=[f"{result.gain:.2f}× ({result.outcome})"], textposition="outside",
            hovertext=[result.setting]))
        running = after
    figure.add_hline(y=1.0, line_dash="dot", line_color="gray")
    figure.update_layout(showlegend=False)
    return _layout(figure, "Each optimization alone, where it binds: gain over the baseline "
                   "(95 % interval)", "step", "gain (×, running product)")


def figures_html(figures: Mapping[str, go.Figure], title: str) -> str:
    """One self-contained page (plotly.js embedded once, so it opens offline)."""
    parts = [to_html(figure, full_html=False, include_plotlyjs=index == 0)
             for index, figure in enumerate(figures.values())]
    heading = escape(title)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{heading}</title>"
            f"</head><body><h1>{heading}</h1>{''.join(parts)}</body></html>")


def coldstart_bars(result: ColdStartResult) -> go.Figure:
    """One stacked bar per stack and cache state: each phase's mean over trials, the image's
    phases apart from the engine's own start; the whole bar's 95 % interval on top."""
    figure = go.Figure()
    labels = [f"{row.stack} ({row.mode})<br>{row.cache}" for row in result.summaries]
    for phase, colour in zip(PHASES, ("#d62728", "#7f7f7f", "#1f77b4"), strict=True):
        figure.add_trace(go.Bar(
            x=labels, y=[row.phases[phase].value for row in result.summaries],
            name=PHASE_LABELS[phase], marker_color=colour,
            hovertemplate="%{x}: %{y:.2f} s<extra>" + PHASE_LABELS[phase] + "</extra>"))
    totals = [row.phases["total_s"] for row in result.summaries]
    figure.add_trace(go.Scatter(
        x=labels, y=[total.value for total in totals], mode="markers", name="to first answer",
        marker={"color": "black", "size": 6},
        error_y={"type": "data", "symmetric": False,
                 "array": [(total.ci_high or total.value) - total.value for total in totals],
                 "arrayminus": [total.value - (total.ci_low or total.value)
                                for total in totals]}))
    figure.update_layout(barmode="stack")
    _layout(figure, "Cold start of one replica, phase by phase (mean over trials, 95 % "
            "interval of the total)", "stack, cache", "seconds")
    figure.update_layout(legend_title_text="phase")
    return figure
