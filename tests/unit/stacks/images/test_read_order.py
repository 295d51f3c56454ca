"""The image's layout from a traced start: files by when any process first opened them, native
libraries beside the first file opened near them, and mksquashfs's sort file from that."""

from __future__ import annotations

from pathlib import Path

from stacks.images.read_order import TOP_PRIORITY, OpenTrace, priorities, write_sort_file

SITE = Path("/venv/site-packages")


def test_files_are_ordered_by_their_first_open_in_any_process(tmp_path: Path) -> None:
    trace = OpenTrace(tmp_path)
    assert trace.env["IMAGE_TRACE_OPENS"] == str(tmp_path)
    (tmp_path / "100.log").write_text("10.0 /a/first.py\n12.0 /a/third.py\n13.0 /a/first.py\n")
    (tmp_path / "101.log").write_text("11.0 /a/second.py\n9.0 /a/zeroth.py\n")
    assert trace.read_order() == [Path("/a/zeroth.py"), Path("/a/first.py"),
                                  Path("/a/second.py"), Path("/a/third.py")]


def test_a_native_library_goes_with_the_first_file_opened_near_it_and_unseen_files_stay_out(
        ) -> None:
    placed = {SITE / "torch" / "__init__.py": Path("site/torch/__init__.py"),
              SITE / "torch" / "lib" / "libtorch.so": Path("site/torch/lib/libtorch.so"),
              SITE / "vllm" / "__init__.py": Path("site/vllm/__init__.py"),
              SITE / "numpy" / "core.so": Path("site/numpy/core.so"),
              SITE / "unused.py": Path("site/unused.py"),
              SITE / "has space.py": Path("site/has space.py")}
    order = [SITE / "vllm" / "__init__.py", SITE / "torch" / "__init__.py",
             Path("/elsewhere/not-in-image.py"), SITE / "has space.py"]
    mapped = [SITE / "torch" / "lib" / "libtorch.so", SITE / "numpy" / "core.so"]
    ranked = priorities(order, mapped, placed)
    assert ranked[Path("site/vllm/__init__.py")] == TOP_PRIORITY
    assert ranked[Path("site/torch/__init__.py")] == TOP_PRIORITY - 1
    # torch/lib has no opened file: the nearest directory above it, torch/, does.
    assert ranked[Path("site/torch/lib/libtorch.so")] == TOP_PRIORITY - 1
    # numpy/ has none either: the site directory's first opened file (vllm's) stands for it.
    assert ranked[Path("site/numpy/core.so")] == TOP_PRIORITY
    assert Path("site/unused.py") not in ranked  # not read: packed after, at priority 0
    assert Path("site/has space.py") not in ranked  # mksquashfs cannot read such a line


def test_the_sort_file_lists_the_first_read_first(tmp_path: Path) -> None:
    placed = {SITE / name: Path(name) for name in ("a.py", "b.py")}
    listed = write_sort_file([SITE / "b.py", SITE / "a.py"], [], placed, tmp_path / "sort")
    assert listed == 2
    assert (tmp_path / "sort").read_text() == f"b.py {TOP_PRIORITY}\na.py {TOP_PRIORITY - 1}\n"
