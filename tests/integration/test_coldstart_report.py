"""A `harness coldstart` folder (written here from start records, not by starting engines)
logged to MLflow once however often `harness log` runs, and shown on the dashboard: the notes,
the stacked bar of phases, the phase table and the ratios."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness.experiments.coldstart import ColdStartConfig, write_inputs
from harness.measure.coldstart import summarize_starts
from harness.report.coldstart_results import COLDSTART_FILE, ColdStartResult, RegistrySettings
from harness.report.log_folder import log_saved
from stacks.spec import load_local_stack_spec
from tests.integration.test_dashboard import app_over
from tests.unit.harness.measure.test_coldstart import STARTS


def coldstart_folder(root: Path) -> Path:
    out = root / "coldstart-run"
    out.mkdir()
    config = ColdStartConfig(out=out, trials=3)
    run = write_inputs(config, [(name, load_local_stack_spec(name))
                                for name in ("diy", "optimized")], out)
    summaries, ratios, notes = summarize_starts(STARTS)
    ColdStartResult(run_id=run.run_id or "", stacks=["diy", "optimized"], trials=3,
                    registry=RegistrySettings(bandwidth_mbps=400, latency_ms=10), images={},
                    starts=STARTS, summaries=summaries, ratios=ratios, notes=notes
                    ).write(out / COLDSTART_FILE)
    (out / "starts.jsonl").write_text("".join(start.model_dump_json() + "\n"
                                              for start in STARTS))
    return out


def test_a_coldstart_run_is_logged_once_and_the_dashboard_draws_its_phases(
        tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    out = coldstart_folder(tmp_path)
    first = log_saved(out)
    assert log_saved(out) == first  # idempotent
    run = MlflowClient(mlflow_store).get_run(first)
    assert run.data.tags["harness.role"] == "coldstart"
    assert run.data.metrics["diy.cold.image_s.value"] == pytest.approx(30.0)
    assert run.data.metrics["ratio.cold.image_s.value"] == pytest.approx(
        (30 * 31 * 29) ** (1 / 3) / 0.2)
    artifacts = {item.path for item in MlflowClient(mlflow_store).list_artifacts(first)}
    assert {"coldstart.json", "starts.jsonl", "run.json", "specs", "figures"} <= artifacts

    app = app_over(mlflow_store, monkeypatch)
    assert not app.exception, [e.value for e in app.exception]
    assert any(header.value == "Cold start, phase by phase" for header in app.header)
    assert any(box.value.startswith("goal image_s (cold) eager ÷ lazy ≥ 10×: holds")
               for box in app.info)
    phases = app.dataframe[0].value
    assert list(phases["stack"]) == ["diy (eager)", "diy (eager)", "optimized (lazy)",
                                     "optimized (lazy)"]
    ratios = app.dataframe[1].value
    assert list(ratios["goal"])[:1] == ["≥ 10×"]
