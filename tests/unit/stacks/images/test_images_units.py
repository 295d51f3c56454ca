"""Image parts without processes: what goes into an image, the manifest's digests, how a
replica's command line and environment point at an image, and the registry's settings."""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
from pathlib import Path

import pytest

from stacks.errors import ImageError, SpecError
from stacks.images.contents import (
    PY_VERSION,
    engine_distribution,
    installed_version,
    loaded,
    requirement_closure,
    stage,
    switched_off_by_engine,
)
from stacks.images.manifest import digests
from stacks.images.node import runtime_env
from stacks.images.registry import Registry, _delay
from stacks.launcher import replica_argv
from stacks.spec import StackSpec, load_stack_spec


def spec(**changes: object) -> StackSpec:
    base: dict[str, object] = {"name": "s", "engine": {"model": "/models/m"}}
    return StackSpec.model_validate(base | changes)


def test_the_requirement_closure_follows_extras_to_what_the_engine_imports() -> None:
    closure = requirement_closure(engine_distribution())
    # vLLM imports uvloop, which only uvicorn[standard] requires.
    assert {"torch", "transformers", "uvicorn", "uvloop"} <= set(closure)
    # The harness's own tools are not the engine's.
    assert not {"mlflow", "streamlit", "playwright", "locust"} & set(closure)
    assert metadata.distribution("uvloop").version == closure["uvloop"].version


def test_a_distribution_is_pruned_only_when_it_has_native_code_and_none_was_mapped() -> None:
    pure = [Path("/site/pkg/__init__.py")]
    native = [Path("/site/ext/__init__.py"), Path("/site/ext/_core.cpython-311.so"),
              Path("/site/ext.libs/libz.so.1")]
    assert loaded(pure, set())
    assert not loaded(native, {Path("/site/other.so")})
    assert loaded(native, {Path("/site/ext.libs/libz.so.1")})


def test_the_manifest_digests_the_whole_file_and_each_block(tmp_path: Path) -> None:
    blob = tmp_path / "image"
    blob.write_bytes(b"a" * 10 + b"b" * 10 + b"c" * 5)
    whole, blocks = digests(blob, block_size=10)
    assert whole == "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
    assert blocks == [hashlib.sha256(part).hexdigest() for part in (b"a" * 10, b"b" * 10,
                                                                      b"c" * 5)]


def test_a_replica_from_an_image_runs_its_interpreter_and_model_under_the_same_name() -> None:
    root = Path("/node/eager/abc")
    argv = replica_argv(spec(engine={"model": "/models/m"}), 8001, root)
    assert argv[0] == "/node/eager/abc/python/bin/python3.11"
    assert argv[argv.index("--model") + 1] == "/node/eager/abc/model"
    # Without a served name, clients still ask for the model by its path on the machine.
    assert argv[argv.index("--served-model-name") + 1] == "/models/m"
    named = replica_argv(spec(engine={"model": "/m", "served_model_name": "tiny"}), 1, root)
    assert named[named.index("--served-model-name") + 1] == "tiny"


def test_a_replica_from_an_image_inherits_nothing_of_this_machine_s_python() -> None:
    env = runtime_env(Path("/img"), {"PATH": "/usr/bin", "PYTHONPATH": "/work/.venv/lib",
                                     "VIRTUAL_ENV": "/work/.venv", "LD_LIBRARY_PATH": "/opt",
                                     "VLLM_CPU_KVCACHE_SPACE": "1"})
    assert "PYTHONPATH" not in env
    assert "VIRTUAL_ENV" not in env
    assert env["PYTHONHOME"] == "/img/python"
    assert env["LD_LIBRARY_PATH"] == "/img/python/lib:/opt"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["PATH"] == "/usr/bin"


@pytest.mark.parametrize(("stack", "mode"), [("diy", "eager"), ("optimized", "lazy")])
def test_the_stacks_start_from_their_images(stack: str, mode: str) -> None:
    loaded_spec = load_stack_spec(stack)
    assert isinstance(loaded_spec, StackSpec)
    assert loaded_spec.image.mode == mode


def test_an_unknown_image_mode_is_one_line_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text("name: s\nengine: {model: m}\nimage: {mode: fast}\n")
    with pytest.raises(SpecError, match=r"image\.mode: Input should be 'none', 'eager' or "
                                        r"'lazy' \(got 'fast'\)"):
        load_stack_spec(str(path))


@pytest.mark.parametrize(("bandwidth", "latency", "message"), [
    (0, 10, "bandwidth must be above 0"), (100, -1, "latency must be 0 ms or more")])
def test_registry_settings_out_of_range_are_refused(tmp_path: Path, bandwidth: float,
                                                    latency: float, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        Registry(tmp_path, bandwidth_mbps=bandwidth, latency_ms=latency)


def test_the_registry_s_latency_is_whole_milliseconds_and_none_below_one() -> None:
    assert _delay(10) == "echo_sleep 0.010; echo_exec @file;"
    assert _delay(0.4) == "echo_exec @file;"
    assert _delay(1500) == "echo_sleep 1.500; echo_exec @file;"


def test_a_stack_made_of_the_same_things_takes_the_built_image_of_another(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stacks.images import build
    from stacks.images.manifest import ImageContents, ImageManifest

    monkeypatch.setattr(build, "BUILT_DIR", tmp_path)
    (tmp_path / "diy").mkdir()
    (tmp_path / "diy" / "image.sqfs").write_bytes(b"squashfs bytes")
    ImageManifest(name="diy", digest="sha256:" + "a" * 64, size=14, block_digests=["b"],
                  source_key="k1", contents=ImageContents(
                      distributions=[], pruned=[], files=1, unpacked_bytes=1, model="m")
                  ).write(tmp_path / "diy" / "manifest.json")
    assert build.same_image("diy-rr", "k2") is None  # made from other things
    shared = build.same_image("diy-rr", "k1")
    assert shared is not None
    assert shared.name == "diy-rr"
    assert shared.digest == "sha256:" + "a" * 64
    assert (tmp_path / "diy-rr" / "image.sqfs").read_bytes() == b"squashfs bytes"
    assert ImageManifest.read(tmp_path / "diy-rr" / "manifest.json").name == "diy-rr"


@pytest.mark.skipif(installed_version("triton") is None, reason="triton is not installed")
def test_the_engine_s_verdict_on_triton_is_asked_in_a_process_of_its_own() -> None:
    from vllm.triton_utils import importing

    # The verdict read from another process is the one the engine reaches in this one.
    assert ("triton" in switched_off_by_engine()) == (not importing.HAS_TRITON)


def test_a_distribution_the_engine_switches_off_is_left_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two small distributions stand for the engine's closure: staging all of it is 2 GB.
    closure = {name: metadata.distribution(name) for name in ("packaging", "idna")}
    monkeypatch.setattr("stacks.images.contents.requirement_closure", lambda _: closure)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    contents = stage(tmp_path / "tree", model, mapped=None, switched_off=["IDNA"])
    assert contents.pruned == ["idna"]
    assert contents.distributions == ["packaging"]
    site = tmp_path / "tree" / "python" / "lib" / PY_VERSION / "site-packages"
    assert (site / "packaging" / "version.py").is_file()
    assert not (site / "idna").exists()
    assert (tmp_path / "tree" / "model" / "config.json").is_file()
