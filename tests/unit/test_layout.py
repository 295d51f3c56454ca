"""The house rules a reader relies on: where things live, which side may import which, and how
big a module or a function may grow. Each failure names the file and line to fix."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.report.results_doc import render

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("harness", "stacks", "workloads", "dashboard")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def sources(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("side", ["stacks", "workloads"])
def test_the_serving_side_and_the_traffic_never_import_the_harness(side: str) -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in sources(side) for line, module in imported(path)
             if module == "harness" or module.startswith("harness.")]
    assert wrong == []


def test_the_harness_reaches_models_only_through_prepare() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in sources("harness", "dashboard") for line, module in imported(path)
             if module.startswith("stacks.models") and module != "stacks.models.prepare"]
    assert wrong == []


def test_no_module_is_over_its_size() -> None:
    big = [f"{path.relative_to(ROOT)}: {count} lines" for path in sources(*PACKAGES)
           if (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert big == []


def test_no_function_is_over_its_size() -> None:
    long = []
    for path in sources(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                f"{length} lines")
    assert long == []


def test_the_results_format_page_is_generated_from_the_models() -> None:
    page = ROOT / "docs" / "results-format.md"
    assert page.read_text() == render(), (
        "docs/results-format.md is stale: regenerate it with "
        "`.venv/bin/python -m harness.report.results_doc > docs/results-format.md`")
