"""The scaling timeline, as one Plotly figure of four rows over the same seconds: the offered
load, each stack's replicas (ready, and ready + starting), its P99 against the SLO, and its
failed requests, with each scale-up and scale-down marked on the replicas row. The numbers come
from `harness.measure.metrics.per_second` and `harness.measure.scaling.fleet_per_second`."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import DEFAULT_PLOTLY_COLORS
from plotly.subplots import make_subplots

from harness.measure.metrics import Window, per_second
from harness.measure.scaling import fleet_per_second
from harness.report.figure_axes import LOG_AXIS

MS = 1000.0
ROWS = ("offered load (QPS)", "replicas", "P99 end to end (ms)", "failed requests")
MARKS = {"scale_up": "triangle-up", "scale_down": "triangle-down"}


def scaling_timeline_figure(records: Mapping[str, pd.DataFrame],
                            scaling: Mapping[str, list[pd.DataFrame]], window: Window,
                            slo_s: float) -> go.Figure:
    """`scaling`: per stack, its trials' scaling frames (`harness.measure.scaling.
    scaling_frame`); counts are means over trials."""
    figure = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                           subplot_titles=ROWS, row_heights=[0.2, 0.3, 0.3, 0.2])
    for index, (stack, frame) in enumerate(records.items()):
        color = DEFAULT_PLOTLY_COLORS[index % len(DEFAULT_PLOTLY_COLORS)]
        seconds = per_second(frame, window)
        if index == 0:  # every stack replayed the same schedule
            figure.add_trace(go.Scatter(x=seconds["second"], y=seconds["offered_qps"],
                                        name="offered", line={"color": "gray"}), row=1, col=1)
        fleet = fleet_per_second(scaling.get(stack, []), window)
        if not fleet.empty:
            figure.add_trace(go.Scatter(x=fleet["second"], y=fleet["ready"],
                                        name=f"{stack}: ready",
                                        line={"color": color, "shape": "hv"}), row=2, col=1)
            figure.add_trace(go.Scatter(x=fleet["second"], y=fleet["ready"] + fleet["starting"],
                                        name=f"{stack}: ready + starting",
                                        line={"color": color, "dash": "dot", "shape": "hv"}),
                             row=2, col=1)
            _mark_steps(figure, stack, scaling.get(stack, []), window, color)
        figure.add_trace(go.Scatter(x=seconds["second"], y=seconds["latency_p99_s"] * MS,
                                    name=f"{stack}: P99", line={"color": color}), row=3, col=1)
        figure.add_trace(go.Bar(x=seconds["second"], y=seconds["errors"],
                                name=f"{stack}: failed", marker_color=color), row=4, col=1)
    if not any(trace.type == "bar" and sum(trace.y) for trace in figure.data):
        figure.add_annotation(text="no failed requests", showarrow=False, row=4, col=1,
                              x=(window.start_s + window.end_s) / 2, y=0.5)
    figure.add_hline(y=slo_s * MS, line_dash="dash", line_color="crimson", row=3, col=1,
                     annotation_text=f"SLO {slo_s * MS:,.0f} ms")
    figure.update_yaxes(**LOG_AXIS, row=3, col=1)
    figure.update_yaxes(dtick=1, rangemode="tozero", row=2, col=1)  # whole replicas
    figure.update_xaxes(range=[window.start_s, window.end_s], title_text="time since run start "
                        "(s)", row=4, col=1)
    figure.update_layout(title="Scaling over time: load, replicas, P99 and failures",
                         template="plotly_white", height=900, barmode="group",
                         margin={"l": 60, "r": 20, "t": 80, "b": 50})
    return figure


def _mark_steps(figure: go.Figure, stack: str, frames: list[pd.DataFrame], window: Window,
                color: str) -> None:
    """Each trial's scale-ups and scale-downs, at the fleet's size they asked for."""
    for event, symbol in MARKS.items():
        steps = pd.concat([frame[frame["event"] == event] for frame in frames]) \
            if frames else pd.DataFrame()
        if not steps.empty:
            steps = steps[(steps["offset_s"] >= window.start_s)
                          & (steps["offset_s"] < window.end_s)]
        if steps.empty:
            continue
        figure.add_trace(go.Scatter(x=steps["offset_s"], y=steps["to"], mode="markers",
                                    name=f"{stack}: {event.replace('_', ' ')}",
                                    marker={"symbol": symbol, "size": 12, "color": color}),
                         row=2, col=1)
