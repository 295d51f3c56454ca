"""`harness dashboard`: the Streamlit app in `dashboard/app.py`, on 127.0.0.1, over the same
MLflow store `harness run` logs to."""

from __future__ import annotations

import subprocess
import sys

from stacks.spec import PROJECT_ROOT

APP = PROJECT_ROOT / "dashboard" / "app.py"
HOST = "127.0.0.1"  # the dashboard shows the store to whoever reaches it: this machine only


def dashboard_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", HOST, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"]


def start_dashboard(port: int) -> subprocess.Popen[bytes]:
    """The app resolves the store as the harness does (`harness.report.tracking.tracking_uri`)."""
    return subprocess.Popen(dashboard_argv(port), cwd=PROJECT_ROOT)
