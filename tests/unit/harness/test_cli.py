"""Every command's bad input: one line on stderr that names the option and what is allowed,
exit status 2, nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main


def fails_in_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_up_names_the_bad_spec_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "stack.yaml"
    spec.write_text("name: x\nengine: {model: m}\nbalancer: {policy: fastest}\n")
    line = fails_in_one_line(["up", str(spec)], capsys)
    assert "balancer.policy" in line
    assert "p2c" in line


def test_up_lists_the_known_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert "known stacks: diy, optimized" in fails_in_one_line(["up", "nosuchstack"], capsys)


def test_up_says_a_missing_model_elsewhere_has_no_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "stack.yaml"
    spec.write_text(f"name: x\nengine: {{model: {tmp_path / 'nothing'}}}\n")
    assert "has no config.json" in fails_in_one_line(["up", str(spec)], capsys)


def test_run_names_the_option_and_its_bound(capsys: pytest.CaptureFixture[str]) -> None:
    line = fails_in_one_line(["run", "--trials", "101"], capsys)
    assert line == "error: --trials: Input should be less than or equal to 100 (got 101)"


def test_run_refuses_an_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert "No such option: --bogus" in fails_in_one_line(["run", "--bogus"], capsys)


def test_run_refuses_a_rate_that_is_not_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    assert "'--rate'" in fails_in_one_line(["run", "--rate", "fast"], capsys)


def test_capacity_refuses_a_start_above_its_ceiling(capsys: pytest.CaptureFixture[str]) -> None:
    line = fails_in_one_line(["capacity", "--start-qps", "50", "--max-qps", "10"], capsys)
    assert line == "error: --start-qps (50) must not exceed --max-qps (10)"


def test_capacity_names_a_tolerance_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    line = fails_in_one_line(["capacity", "--tolerance", "2"], capsys)
    assert line.startswith("error: --tolerance: Input should be less than 1")


def test_quality_needs_two_stacks(capsys: pytest.CaptureFixture[str]) -> None:
    line = fails_in_one_line(["quality", "--stacks", "diy"], capsys)
    assert line.startswith("error: --stacks: List should have at least 2 items")


def test_log_wants_a_results_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = fails_in_one_line(["log", str(tmp_path / "none")], capsys)
    assert "is not a folder; pass a results folder" in line


def test_log_names_what_a_folder_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "run.json is missing" in fails_in_one_line(["log", str(tmp_path)], capsys)


def test_dashboard_port_in_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert "'--port'" in fails_in_one_line(["dashboard", "--port", "0"], capsys)


def test_schedule_lists_the_known_workloads(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    line = fails_in_one_line(["schedule", "nope", "--out", str(tmp_path / "s.jsonl")], capsys)
    assert ("known: calibration_levels, saturated_decode, short_requests, writing_assistant,"
            in line)


def test_model_build_wants_an_integer_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert "'--seed'" in fails_in_one_line(["model", "build", "--seed", "x"], capsys)


def test_model_quantize_names_the_granularities(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    line = fails_in_one_line(["model", "quantize", str(tmp_path), "--out", str(tmp_path / "q"),
                              "--granularity", "row"], capsys)
    assert line == "error: --granularity: must be channel or tensor (got 'row')"


def test_model_build_writes_where_told(tmp_path: Path) -> None:
    assert main(["model", "build", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_scorecard_names_its_phase_options(capsys: pytest.CaptureFixture[str]) -> None:
    line = fails_in_one_line(["scorecard", "--load-duration", "0"], capsys)
    assert line == "error: --load-duration: Input should be greater than 0 (got 0.0)"
    line = fails_in_one_line(["scorecard", "--kill-trials", "-1"], capsys)
    assert line.startswith("error: --kill-trials: Input should be greater than or equal to 0")


def test_scorecard_names_an_unknown_kill_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    line = fails_in_one_line(["scorecard", "--kill-scenario", "meteor"], capsys)
    assert "meteor" in line
    assert "replica_kill" in line  # the known ones are listed


def test_coldstart_refuses_a_stack_without_an_image(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "plain.yaml"
    spec.write_text("name: plain\nengine: {model: models/tiny}\n")
    line = fails_in_one_line(["coldstart", "--stacks", str(spec), "--out",
                              str(tmp_path / "out")], capsys)
    assert "stack plain runs from this machine (image.mode: none)" in line
    assert not (tmp_path / "out").exists()  # refused before a results folder is made


def test_up_names_an_unknown_image_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--image: must be none, eager or lazy (got 'fast')" in fails_in_one_line(
        ["up", "diy", "--image", "fast"], capsys)


def test_coldstart_names_a_bandwidth_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--bandwidth-mbps" in fails_in_one_line(["coldstart", "--bandwidth-mbps", "0"], capsys)
