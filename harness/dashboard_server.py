"""`harness dashboard`: the Streamlit app in `dashboard/app.py`, on 127.0.0.1, over the same
MLflow store `harness run` logs to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.tracking import tracking_uri
from stacks.spec import PROJECT_ROOT

APP = PROJECT_ROOT / "dashboard" / "app.py"
HOST = "127.0.0.1"  # the dashboard shows the store to whoever reaches it: this machine only


def dashboard_argv(port: int, app: Path = APP) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app),
            "--server.address", HOST, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"]


def dashboard_env(uri: str | None = None) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": uri or tracking_uri()}


def start_dashboard(port: int, uri: str | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(dashboard_argv(port), env=dashboard_env(uri), cwd=PROJECT_ROOT)
