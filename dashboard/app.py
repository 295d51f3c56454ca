"""The comparison dashboard: which stack wins on throughput, P99 and reliability, by how much,
and how latency behaved over the run; for a capacity run, each stack's highest rate within
the SLO, the ratio with its interval, and latency and success against offered load. Reads
the MLflow store `harness run` and `harness capacity` log to.

    harness dashboard [--port 8501]
    MLFLOW_TRACKING_URI=... streamlit run dashboard/app.py      (the same, by hand)
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pandas as pd
import streamlit as st

from dashboard.capacity import capacity_ablation_frame, capacity_frame, probes_frame
from dashboard.comparison import TIE, ablation_frame, comparison_frame
from dashboard.store import (
    Comparison,
    comparisons,
    experiments,
    load_capacity_summary,
    load_comparison,
    runs_table,
)
from harness.figures import capacity_figures, comparison_figures
from harness.tracking import client, tracking_uri

FIRST_RUN = """
No comparison has been logged to this store yet.

Make a first run (it brings each stack up in turn on the embedded model):

    make demo    # a short capacity search of both stacks, about 12 minutes
    # or, one load side by side, about 3 minutes:
    .venv/bin/harness run --stacks diy,optimized --rate 10 --duration 30

then reload this page. A saved results folder can be logged with `harness log results/<run>`.
"""


@st.cache_resource
def _client(uri: str) -> Any:
    return client(uri)


def store() -> Any:
    """The client of the store named now (cached per store, so one server process can be
    pointed elsewhere without serving the old store's runs)."""
    return _client(tracking_uri())


@st.cache_data(show_spinner="Loading the comparison's records…")
def comparison(uri: str, run_id: str) -> Comparison:
    """A logged comparison never changes, so it is read from the store once."""
    return load_comparison(_client(uri), run_id)


@st.cache_data(show_spinner="Drawing the charts…")
def figures(uri: str, run_id: str) -> dict[str, Any]:
    """Its charts, likewise computed once, not on every click elsewhere on the page."""
    data = comparison(uri, run_id)
    return comparison_figures(data.records, data.summary, data.window, data.slo_s)


@st.cache_data(show_spinner="Loading the capacity run…")
def capacity_summary(uri: str, run_id: str) -> dict[str, Any]:
    return load_capacity_summary(_client(uri), run_id)


@st.cache_data(show_spinner="Drawing the charts…")
def capacity_charts(uri: str, run_id: str) -> dict[str, Any]:
    return capacity_figures(capacity_summary(uri, run_id))


def pick_run() -> tuple[str, str, str] | None:
    """(experiment id, run id, kind) of the comparison or capacity run chosen in the sidebar;
    None for an empty store."""
    found = experiments(store())
    if not found:
        st.info(FIRST_RUN)
        return None
    names = {name: experiment_id for experiment_id, name in found}
    experiment = st.sidebar.selectbox("Experiment", list(names))
    runs = comparisons(store(), names[experiment])
    labels = [f"{row.kind}: {row.name} ({row.stacks})" for row in runs.itertuples()]
    choice = st.sidebar.selectbox("Run (newest first)", range(len(labels)),
                                  format_func=lambda index: labels[index])
    return names[experiment], str(runs.iloc[choice]["run_id"]), str(runs.iloc[choice]["kind"])


def headline(data: Comparison, table: pd.DataFrame) -> None:
    baseline = data.summary.get("baseline", "")
    others = [stack for stack in data.records if stack != baseline]
    if not others:
        return
    other = others[0]
    ratio = f"{other} ÷ {baseline}"
    rows: dict[Any, dict[Any, Any]] = table.set_index("metric").to_dict("index")
    columns = st.columns(3)
    better: dict[str, Literal["normal", "inverse"]] = {
        "throughput": "normal", "latency P99": "inverse", "success rate": "normal"}
    for column, (metric, color) in zip(columns, better.items(), strict=True):
        value, unit = float(rows[metric][other]), str(rows[metric]["unit"])
        delta = float(rows[metric][ratio])
        # Streamlit colours a delta by its sign: give the change, not the ratio.
        change = None if math.isnan(delta) else f"{(delta - 1) * 100:+.1f} % vs {baseline}"
        column.metric(f"{other}: {metric}", "–" if math.isnan(value) else f"{value:,.1f} {unit}",
                      delta=change, delta_color=color)


def show_table(table: pd.DataFrame) -> None:
    def mark(winner: str) -> str:
        return winner if winner in (TIE, "–") else f"★ {winner}"

    shown = table.assign(winner=table["winner"].map(mark))
    number_columns = [c for c in shown.columns if c not in ("metric", "unit", "winner")]
    st.dataframe(shown.style.format({c: "{:,.3f}" if "÷" in c else "{:,.2f}"
                                     for c in number_columns}, na_rep="–"),
                 hide_index=True, width="stretch")


def runs_list(experiment_id: str) -> None:
    st.subheader("Runs in this experiment")
    frame = runs_table(store(), experiment_id)
    if frame.empty:
        st.write("No runs.")
        return
    filters = st.columns(3)
    for column, tag in zip(filters, ("role", "stack", "workload"), strict=True):
        if tag in frame.columns:
            values = sorted(frame[tag].dropna().unique())
            chosen = column.multiselect(f"filter by {tag}", values)
            if chosen:
                frame = frame[frame[tag].isin(chosen)]
    st.dataframe(frame, hide_index=True, width="stretch")


def show_capacity(run_id: str) -> None:
    summary = capacity_summary(tracking_uri(), run_id)
    slo, search = summary["slo"], summary["search"]
    st.caption(f"Capacity run `{summary['run']}` · workload `{summary['workload']}` · a rate "
               f"passes when P99 ≤ {slo['p99_s'] * 1000:,.0f} ms and success ≥ "
               f"{slo['min_success']:.2%} · probes of {search['duration_s']:g} s after "
               f"{search['warmup_s']:g} s of warm-up · {summary['trials']} trial(s), each "
               f"bracketed to {search['tolerance']:.0%}")
    stacks = summary["stacks"]
    columns = st.columns(len(stacks) + len(summary.get("ratios", {})))
    for column, (stack, row) in zip(columns, stacks.items(), strict=False):
        per_replica = row["replicas"] is not None
        value = row["per_replica_capacity_qps" if per_replica else "capacity_qps"]
        low, high = (row.get("per_replica_ci_low"), row.get("per_replica_ci_high")) \
            if per_replica else (row["ci_low"], row["ci_high"])
        column.metric(f"{stack}: capacity{' per replica' if per_replica else ''}",
                      row["status"].replace("_", " ") if value is None
                      else f"{value:,.1f} QPS",
                      help=row["note"] + (f"; 95 % interval [{low:,.1f}, {high:,.1f}]"
                                          if low is not None and high is not None else ""))
    for column, ratio in zip(columns[len(stacks):], summary.get("ratios", {}).values(),
                             strict=True):
        column.metric(f"{ratio['stack']} ÷ {ratio['baseline']}",
                      "–" if ratio["value"] is None else f"{ratio['value']:.2f}×",
                      help=ratio.get("method") or ratio["verdict"])
    for ratio in summary.get("ratios", {}).values():
        if ratio["value"] is None:
            st.error(ratio["verdict"])
        elif ratio["ci_low"] is not None and (ratio["ci_low"] > 1 or ratio["ci_high"] < 1):
            st.success(ratio["verdict"])
        else:
            st.warning(ratio["verdict"])
    table = capacity_frame(summary)
    st.dataframe(table.style.format({column: "{:,.1f}" for column in (
        "capacity QPS", "95% CI low", "95% CI high", "per replica QPS")}, na_rep="–"),
        hide_index=True, width="stretch")
    shares = capacity_ablation_frame(summary)
    if shares is not None:
        st.subheader(f"What each optimization of {summary['ablation']['stack']} contributes "
                     "to capacity")
        st.caption("The full stack's capacity ÷ the same stack's with only that optimization "
                   "turned off: above 1× it helps; an interval that includes 1 cannot tell.")
        st.dataframe(shares.style.format({c: "{:.2f}×" for c in shares.columns
                                          if "×" in c or "CI" in c}, na_rep="–"),
                     hide_index=True, width="stretch")
    charts = list(capacity_charts(tracking_uri(), run_id).values())
    st.plotly_chart(charts[0], width="stretch")
    left, right = st.columns(2)
    for index, figure in enumerate(charts[1:]):
        (left if index % 2 == 0 else right).plotly_chart(figure, width="stretch")
    st.subheader("Every probe")
    st.dataframe(probes_frame(summary).style.format(
        {"offered QPS": "{:g}", "P50 ms": "{:,.0f}", "P99 ms": "{:,.0f}",
         "success % (of finished)": "{:.2f}", "throughput QPS": "{:,.1f}"},
        na_rep="–"), hide_index=True, width="stretch")


def main() -> None:
    st.set_page_config(page_title="serving-harness comparison", layout="wide")
    st.title("Serving stacks compared")
    st.sidebar.caption(f"MLflow store: `{tracking_uri()}`")
    picked = pick_run()
    if picked is None:
        return
    experiment_id, run_id, kind = picked
    if kind == "capacity":
        show_capacity(run_id)
        runs_list(experiment_id)
        return
    data = comparison(tracking_uri(), run_id)
    window = data.window
    st.caption(f"Run `{data.name}` · workload `{data.summary.get('workload')}` · measured "
               f"{window.length_s:g} s after {window.start_s:g} s of warm-up · SLO "
               f"{data.slo_s * 1000:,.0f} ms · schedule sha256 "
               f"`{str(data.summary.get('schedule_sha256', ''))[:12]}`")
    table = comparison_frame(data.summary)
    headline(data, table)
    show_table(table)
    shares = ablation_frame(data.summary)
    if shares is not None:
        st.subheader(f"What each optimization of {data.summary['ablation']['stack']} "
                     "contributes")
        st.caption("The full stack's figure ÷ the same stack with only that optimization "
                   "turned off: throughput above 1× and latency below 1× mean it helps.")
        st.dataframe(shares.style.format({c: "{:.2f}×" for c in shares.columns if "×" in c},
                                         na_rep="–"), hide_index=True, width="stretch")
    left, right = st.columns(2)
    for index, figure in enumerate(figures(tracking_uri(), run_id).values()):
        (left if index % 2 == 0 else right).plotly_chart(figure, width="stretch")
    runs_list(experiment_id)


main()
