from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from harness.cli import app

runner = CliRunner()


def test_bad_spec_is_one_line_and_exit_2(tmp_path: Path) -> None:
    spec = tmp_path / "stack.yaml"
    spec.write_text("name: x\nengine: {model: m}\nbalancer: {policy: fastest}\n")
    result = runner.invoke(app, ["up", str(spec)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "balancer.policy" in lines[0]
    assert "p2c" in lines[0]


def test_unknown_stack_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["up", "nosuchstack"])
    assert result.exit_code == 2
    assert "known stacks: diy, optimized" in result.output


def test_model_elsewhere_that_is_missing_is_named(tmp_path: Path) -> None:
    spec = tmp_path / "stack.yaml"
    spec.write_text(f"name: x\nengine: {{model: {tmp_path / 'nothing'}}}\n")
    result = runner.invoke(app, ["up", str(spec)])
    assert result.exit_code == 2
    assert "has no config.json" in result.output


def test_model_build_writes_where_told(tmp_path: Path) -> None:
    result = runner.invoke(app, ["model", "build", "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_capacity_options_that_cannot_work_are_one_line_and_exit_2() -> None:
    result = runner.invoke(app, ["capacity", "--start-qps", "50", "--max-qps", "10"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: capacity: start_qps (50) must not exceed max_qps (10)"
