"""The dashboard over a real store: Streamlit's AppTest, then a real browser (Debian's
Chromium, headless) against `harness dashboard` as a user starts it."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from harness.dashboard_server import APP
from stacks.process import free_port, spawn, stop_trees
from tests.integration.conftest import LoggedRun

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("HARNESS_SCREENSHOTS", "")) if os.environ.get(
    "HARNESS_SCREENSHOTS") else None
CHARTS = 5  # latency CDF, throughput, P99 over time, replica share, errors


def app_over(uri: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return AppTest.from_file(str(APP), default_timeout=120).run()


def test_the_table_holds_both_stacks_with_ratios(logged_run: LoggedRun,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_over(logged_run.uri, monkeypatch)
    assert not app.exception, [e.value for e in app.exception]
    table = app.dataframe[0].value
    assert {"plain", "keyed", "keyed ÷ plain", "winner"} <= set(table.columns)
    assert list(table["metric"]) == ["throughput", "latency P50", "latency P99",
                                     "latency P99.9", "success rate", "goodput (within SLO)"]
    success = table.set_index("metric").loc["success rate"]
    assert success["plain"] == success["keyed"] == 100.0
    # The keyed endpoint answers 30 ms later: it loses on P50.
    assert table.set_index("metric").loc["latency P50", "winner"] == "★ plain"
    assert [box.label for box in app.selectbox] == ["Experiment", "Run (newest first)"]
    assert app.selectbox[0].value == "tracking-test"


def test_an_empty_store_says_how_to_make_a_first_run(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_over(f"sqlite:///{tmp_path / 'empty.db'}", monkeypatch)
    assert not app.exception
    assert "harness run --stacks diy,optimized" in app.info[0].value


@pytest.fixture
def dashboard(logged_run: LoggedRun, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = spawn([sys.executable, "-m", "harness.cli", "dashboard", "--port", str(port)],
                    tmp_path / "dashboard.log", env=logged_run.env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "dashboard.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "dashboard did not start within 60 s"
                time.sleep(0.2)
        yield url
    finally:
        stop_trees([process], grace_s=10)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (`make test` "
                    "installs it)")
def test_a_browser_sees_the_charts_and_no_exception(dashboard: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    screenshot = (SCREENSHOTS or tmp_path) / "dashboard.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            # This machine has no network beyond loopback: keep Chromium from calling home.
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            page.goto(dashboard)
            # Until every chart is drawn, or the page shows an exception instead.
            page.wait_for_function(
                "document.querySelector(\"[data-testid='stException']\") || document"
                f".querySelectorAll('.js-plotly-plot .main-svg').length >= {CHARTS}",
                timeout=90_000)
            page.screenshot(path=str(screenshot), full_page=True)
            exceptions = page.locator("[data-testid='stException']")
            assert exceptions.count() == 0, exceptions.first.inner_text()
            page.wait_for_selector("[data-testid='stDataFrame']", timeout=30_000)
            assert "Serving stacks compared" in page.inner_text("h1")
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
