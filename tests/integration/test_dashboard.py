"""The dashboard over a real store: Streamlit's AppTest, then a real browser (Debian's
Chromium, headless) against `harness dashboard` as a user starts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from harness.report.dashboard_server import APP
from tests.integration.browser import CHROMIUM, SCREENSHOTS, screenshot_charts, served_dashboard
from tests.integration.conftest import LoggedRun

CHARTS = 5  # latency CDF, throughput, P99 over time, replica share, errors


def app_over(uri: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return AppTest.from_file(str(APP), default_timeout=120).run()


def test_the_table_holds_both_stacks_with_ratios(logged_run: LoggedRun,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_over(logged_run.uri, monkeypatch)
    assert not app.exception, [e.value for e in app.exception]
    table = app.dataframe[0].value  # the comparison table the CLI prints, as text
    assert list(table.columns) == ["metric", "plain", "keyed", "keyed ÷ plain", "winner"]
    assert list(table["metric"])[:5] == ["throughput", "goodput (within SLO)", "success rate",
                                         "success rate, 95% lower bound",
                                         "latency P50 (from schedule)"]
    success = table.set_index("metric").loc["success rate"]
    assert success["plain"] == success["keyed"] == "100.000%"
    # The keyed endpoint answers 30 ms later: it loses on P50.
    assert table.set_index("metric").loc["latency P50 (from schedule)", "winner"] == "plain"
    assert [box.label for box in app.selectbox] == ["Experiment", "Run (newest first)"]
    assert app.selectbox[0].value == "tracking-test"


def test_an_empty_store_says_how_to_make_a_first_run(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_over(f"sqlite:///{tmp_path / 'empty.db'}", monkeypatch)
    assert not app.exception
    assert "harness run --stacks diy,optimized" in app.info[0].value


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (`make test` "
                    "installs it)")
def test_a_browser_sees_the_charts_and_no_exception(logged_run: LoggedRun,
                                                    tmp_path: Path) -> None:
    with served_dashboard(logged_run.env, tmp_path / "dashboard.log") as url:
        text = screenshot_charts(url, CHARTS, (SCREENSHOTS or tmp_path) / "dashboard.png")
    assert "Serving stacks compared" in text
