"""The comparison dashboard. It opens on the newest scorecard (`harness scorecard`, what
`make demo` runs): every dimension side by side, each with its interval and verdict, over the
capacity run it was measured with. For a comparison: which stack wins on throughput, P99 and
reliability, by how much, and how latency behaved over the run; for a capacity run, each
stack's highest rate within the SLO, the ratio with its interval, and latency and success
against offered load. Reads
the MLflow store `harness run` and `harness capacity` log to. Every table and figure is the
report's own (`harness.report`): this page lays them out and formats nothing itself.

    harness dashboard [--port 8501]
    MLFLOW_TRACKING_URI=... streamlit run dashboard/app.py      (the same, by hand)
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.store import (
    Comparison,
    comparisons,
    experiments,
    load_capacity_summary,
    load_coldstart,
    load_comparison,
    load_mechanisms,
    load_scorecard,
    runs_table,
)
from harness.errors import ResultsError
from harness.measure.alike import margin_words
from harness.measure.reliability import LISTED_FAILURES
from harness.report.capacity_tables import (
    capacity_ablation_table,
    capacity_caption,
    capacity_headlines,
    capacity_table,
    decisive,
    probes_table,
)
from harness.report.coldstart_results import ColdStartResult
from harness.report.coldstart_tables import coldstart_ratio_table, coldstart_table
from harness.report.figures import (
    capacity_figures,
    coldstart_bars,
    comparison_figures,
    mechanisms_waterfall,
)
from harness.report.mechanisms_results import Mechanisms
from harness.report.mechanisms_tables import mechanisms_table
from harness.report.reliability_tables import failures_table, faults_table, reliability_table
from harness.report.results import CapacitySummary
from harness.report.scaling_tables import scaling_ratio_table, scaling_table
from harness.report.scorecard_results import Scorecard
from harness.report.scorecard_tables import machine_words, scorecard_table, send_lag_words
from harness.report.tables import (
    ReportTable,
    ablation_table,
    comparison_caption,
    comparison_table,
    headlines,
)
from harness.report.tracking import client, tracking_uri

FIRST_RUN = """
No comparison has been logged to this store yet.

Make a first run (it brings each stack up in turn on the embedded model):

    make demo    # the scorecard of both stacks, about 20 minutes
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
    return comparison_figures(data.records, data.summary, data.scaling)


@st.cache_data(show_spinner="Loading the capacity run…")
def capacity_summary(uri: str, run_id: str) -> CapacitySummary:
    return load_capacity_summary(_client(uri), run_id)


@st.cache_data(show_spinner="Loading the scorecard…")
def scorecard(uri: str, run_id: str) -> Scorecard:
    return load_scorecard(_client(uri), run_id)


@st.cache_data(show_spinner="Loading the cold starts…")
def coldstart(uri: str, run_id: str) -> ColdStartResult:
    return load_coldstart(_client(uri), run_id)


@st.cache_data(show_spinner="Loading the mechanisms…")
def mechanisms(uri: str, run_id: str) -> Mechanisms:
    return load_mechanisms(_client(uri), run_id)


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


def headline(data: Comparison) -> None:
    shown = headlines(data.summary)
    for column, metric in zip(st.columns(len(shown) or 1), shown, strict=False):
        # Streamlit colours a delta by its sign: the change is given, not the ratio.
        column.metric(metric.label, metric.value, delta=metric.change,
                      delta_color="normal" if metric.higher_is_better else "inverse")


def show_table(table: ReportTable | None, caption: str = "") -> None:
    if table is None:
        return
    st.subheader(table.title)
    if caption:
        st.caption(caption)
    st.dataframe(table.frame(), hide_index=True, width="stretch")


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
    st.caption(capacity_caption(summary))
    shown = capacity_headlines(summary)
    for column, metric in zip(st.columns(len(shown)), shown, strict=True):
        column.metric(metric.label, metric.value, help=metric.help)
    for ratio in summary.ratios.values():
        said = decisive(ratio)
        (st.error if said is None else st.success if said else st.warning)(ratio.verdict)
    show_table(capacity_table(summary))
    show_table(capacity_ablation_table(summary),
               "The full stack's capacity ÷ the same stack's with only that optimization "
               "turned off: above 1× it helps; an interval that includes 1 cannot tell.")
    charts = list(capacity_charts(tracking_uri(), run_id).values())
    st.plotly_chart(charts[0], width="stretch")
    left, right = st.columns(2)
    for index, figure in enumerate(charts[1:]):
        (left if index % 2 == 0 else right).plotly_chart(figure, width="stretch")
    show_table(probes_table(summary))


def show_scorecard(run_id: str) -> None:
    card = scorecard(tracking_uri(), run_id)
    st.header("Scorecard")
    st.caption(f"Scorecard `{card.run}` · workload `{card.workload}` · each figure with its "
               "95 % interval; a row names a winner only where the intervals do not overlap and "
               "each of the winner's trials beats each of the others' (capacity: where the "
               "paired ratio's interval excludes 1), and finds the stacks alike where the "
               f"ratio and each trial's lie {margin_words()}. "
               "Its capacity search follows below.")
    for row in card.rows:
        decided = row.winner is not None or row.alike
        (st.success if decided else st.warning)(f"{row.label}: {row.verdict}")
    for part in card.pending:
        st.warning(f"{part.replace('_', ' ')}: not measured (the scorecard was cut short)")
    if (said := send_lag_words(card.send_lag)) is not None:
        held, words = said
        (st.info if held else st.error)(words)
    if (machine := machine_words(card.machine)) is not None:
        st.info(machine)
    show_table(scorecard_table(card))
    st.header("Capacity at the SLO")


def show_mechanisms(run_id: str) -> None:
    result = mechanisms(tracking_uri(), run_id)
    st.header("Each optimization alone, where it binds")
    st.caption(f"Run `{result.run}` · each optimization added alone to `{result.baseline}` "
               f"as `{result.source}` sets it, measured in the regime it exists for, trials "
               "interleaved off/on; gain > 1× means it helps, with the 95 % interval of the "
               "paired trials. Each mechanism's comparison is its own run in this experiment.")
    for item in result.mechanisms:
        show = {"helps": st.success, "hurts": st.error}.get(item.outcome, st.warning)
        show(f"{item.label} ({item.bottleneck}): {item.verdict}")
        for note in item.notes:
            st.caption(f"{item.label}: {note}")
    for name in result.pending:
        st.warning(f"{name}: not measured (the run was cut short)")
    st.plotly_chart(mechanisms_waterfall(result), width="stretch")
    show_table(mechanisms_table(result))


def show_coldstart(run_id: str) -> None:
    result = coldstart(tracking_uri(), run_id)
    st.header("Cold start, phase by phase")
    st.caption(f"One replica per stack from its image, cold (the node holds nothing of it) "
               f"then warm, over {result.trials} trial(s); registry "
               f"{result.registry.bandwidth_mbps:g} Mbit/s, {result.registry.latency_ms:g} ms "
               "per request. The engine's own start is its own phase.")
    for note in result.notes:
        st.info(note)
    st.plotly_chart(coldstart_bars(result), width="stretch")
    show_table(coldstart_table(result))
    show_table(coldstart_ratio_table(result))


def main() -> None:
    st.set_page_config(page_title="serving-harness comparison", layout="wide")
    st.title("Serving stacks compared")
    st.sidebar.caption(f"MLflow store: `{tracking_uri()}`")
    picked = pick_run()
    if picked is None:
        return
    experiment_id, run_id, kind = picked
    try:
        if kind == "scorecard":
            show_scorecard(run_id)
            show_capacity(run_id)
        elif kind == "mechanisms":
            show_mechanisms(run_id)
        elif kind == "coldstart":
            show_coldstart(run_id)
        elif kind == "capacity":
            show_capacity(run_id)
        else:
            show_comparison(run_id)
    except ResultsError as exc:
        st.error(str(exc))
    runs_list(experiment_id)


def show_comparison(run_id: str) -> None:
    data = comparison(tracking_uri(), run_id)
    summary = data.summary
    st.caption(comparison_caption(summary, data.name))
    headline(data)
    show_table(comparison_table(summary))
    show_table(ablation_table(summary),
               "The full stack's figure ÷ the same stack with only that optimization turned "
               "off: throughput above 1× and latency below 1× mean it helps.")
    show_table(reliability_table(summary),
               f"Under scenario {summary.scenario}: detect = fault → the balancer ejects the "
               "replica; recover = fault → the replica back in rotation.")
    show_table(faults_table(summary))
    show_table(failures_table(summary, limit=LISTED_FAILURES))
    show_table(scaling_table(summary),
               f"Under scenario {summary.scenario}: SLO-violating seconds have a P99 over the "
               "SLO or a failure; replica-seconds count replicas ready, starting and draining.")
    show_table(scaling_ratio_table(summary))
    left, right = st.columns(2)
    for index, figure in enumerate(figures(tracking_uri(), run_id).values()):
        (left if index % 2 == 0 else right).plotly_chart(figure, width="stretch")


main()
