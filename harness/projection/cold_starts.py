"""The cold starts a projected fleet pays, from a `harness coldstart` run: per stack, the mean
time from "replica scheduled" to its first answer with a cold node (nothing of the image on
it), as a new node in a growing fleet has it."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UsageError
from harness.report.coldstart_results import COLDSTART_FILE, ColdStartResult
from harness.report.results import read_result


def measured_cold_starts(run: Path, stacks: list[str]) -> dict[str, float]:
    """Each stack's cold start in the coldstart run at `run`, seconds."""
    if not (run / COLDSTART_FILE).is_file():
        raise UsageError(f"--coldstart-from {run}: no {COLDSTART_FILE} there; give a "
                         "`harness coldstart` results folder")
    result = read_result(run / COLDSTART_FILE, ColdStartResult)
    starts = {}
    for name in stacks:
        cold = [s for s in result.summaries if s.stack == name and s.cache == "cold"]
        if len(cold) != 1 or "total_s" not in cold[0].phases:
            raise UsageError(f"--coldstart-from {run}: want one cold start of {name} there, "
                             f"found {len(cold)} (it measured {', '.join(result.stacks)})")
        starts[name] = cold[0].phases["total_s"].value
    return starts
