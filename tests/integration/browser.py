"""The dashboard as a user meets it: `harness dashboard` started as a process, and a real
browser (Debian's Chromium, headless, driven by Playwright) that waits for its charts."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stacks.process import free_port, spawn, stop_trees

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("HARNESS_SCREENSHOTS", "")) if os.environ.get(
    "HARNESS_SCREENSHOTS") else None


@contextmanager
def served_dashboard(env: dict[str, str], log: Path) -> Iterator[str]:
    """`harness dashboard` on a free port over the store `env` names; its URL once healthy."""
    port = free_port()
    process = spawn([sys.executable, "-m", "harness.cli", "dashboard", "--port", str(port)],
                    log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "dashboard did not start within 60 s"
                time.sleep(0.2)
        yield url
    finally:
        stop_trees([process], grace_s=10)


def screenshot_charts(url: str, charts: int, screenshot: Path) -> str:
    """Open the page, wait until `charts` Plotly charts are drawn (or an exception shows),
    save a full-page screenshot and return the page's text; fails on a Streamlit exception."""
    from playwright.sync_api import sync_playwright

    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            # This machine has no network beyond loopback: keep Chromium from calling home.
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            page.goto(url)
            page.wait_for_function(
                "document.querySelector(\"[data-testid='stException']\") || document"
                f".querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}",
                timeout=90_000)
            page.screenshot(path=str(screenshot), full_page=True)
            exceptions = page.locator("[data-testid='stException']")
            assert exceptions.count() == 0, exceptions.first.inner_text()
            page.wait_for_selector("[data-testid='stDataFrame']", timeout=30_000)
            text = page.inner_text("body")
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
    return text
