"""Quantized checkpoints: what the config declares, one scale per output channel, weights that
dequantize close to the originals, and a cache keyed by the source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM

from stacks.models.cache import ensure_quantized, quantized_dir
from stacks.models.quantize import quantize_checkpoint, source_sha256

OUTLIER_ROW = 3  # one output channel 50x larger than the rest, as real models have


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=64)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[OUTLIER_ROW] *= 50
    directory = tmp_path_factory.mktemp("source")
    model.save_pretrained(directory)
    return directory


def tensors(directory: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(directory / "model.safetensors"), "pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118


@pytest.fixture(scope="module")
def int8_channel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "model"
    quantize_checkpoint(source, out, "int8", "channel")
    return out


def test_config_declares_w8a8_with_channel_weights_and_token_activations(
        int8_channel: Path) -> None:
    config = json.loads((int8_channel / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors"
    assert config["format"] == "int-quantized"
    assert config["ignore"] == ["lm_head"]
    group = config["config_groups"]["group_0"]
    assert group["targets"] == ["Linear"]
    assert group["weights"] | {"observer": None} == group["weights"] | {
        "num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True,
        "dynamic": False, "observer": None}
    activations = group["input_activations"]
    assert (activations["strategy"], activations["dynamic"], activations["num_bits"]) == \
        ("token", True, 8)


def test_one_scale_per_output_channel_and_close_dequantized_weights(
        source: Path, int8_channel: Path) -> None:
    original, quantized = tensors(source), tensors(int8_channel)
    linear = [key.removesuffix(".weight_scale") for key in quantized
              if key.endswith(".weight_scale")]
    assert len(linear) == 2 * 7  # q, k, v, o, gate, up, down per layer
    for name in linear:
        weight, scale = quantized[f"{name}.weight"], quantized[f"{name}.weight_scale"]
        assert weight.dtype == torch.int8
        assert scale.shape == (weight.shape[0], 1)
        restored = weight.to(torch.float32) * scale.to(torch.float32)
        source_weight = original[f"{name}.weight"].to(torch.float32)
        error = torch.linalg.norm(restored - source_weight) / torch.linalg.norm(source_weight)
        assert error < 0.01, name
    # Embeddings and the output projection stay in the source dtype, untouched.
    assert torch.equal(quantized["lm_head.weight"], original["lm_head.weight"])
    assert quantized["model.embed_tokens.weight"].dtype == torch.bfloat16


def test_report_shows_per_channel_beats_per_tensor_where_channels_differ(
        int8_channel: Path) -> None:
    report = json.loads((int8_channel / "quantization_report.json").read_text())
    layers = {layer["layer"]: layer for layer in report["layers"]}
    assert len(layers) == 14
    outlier = layers["model.layers.0.mlp.up_proj"]
    # One loud row stretches a single per-tensor scale over every quiet row.
    assert outlier["tensor"] > 10 * outlier["channel"]
    assert all(layer["channel"] <= layer["tensor"] * 1.001 for layer in layers.values())


def test_per_tensor_and_fp8_variants(source: Path, tmp_path: Path) -> None:
    quantize_checkpoint(source, tmp_path / "tensor", "int8", "tensor")
    scales = [t for k, t in tensors(tmp_path / "tensor").items() if k.endswith("weight_scale")]
    assert all(scale.numel() == 1 for scale in scales)
    quantize_checkpoint(source, tmp_path / "fp8", "fp8", "channel")
    fp8 = tensors(tmp_path / "fp8")
    assert fp8["model.layers.0.mlp.up_proj.weight"].dtype == torch.float8_e4m3fn
    config = json.loads((tmp_path / "fp8" / "config.json").read_text())["quantization_config"]
    assert config["format"] == "float-quantized"
    assert config["config_groups"]["group_0"]["weights"]["type"] == "float"


def test_the_cache_is_keyed_by_the_source(source: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stacks.models.cache.QUANTIZED_DIR", tmp_path / "cache")
    first = ensure_quantized(source, "int8", "channel")
    assert first.name.endswith(f"-int8-channel-{source_sha256(source)[:12]}")
    written = (first / "model.safetensors").stat().st_mtime_ns
    assert ensure_quantized(source, "int8", "channel") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == written  # reused, not rewritten
    changed = tmp_path / "changed"
    changed.mkdir()
    for path in source.iterdir():
        (changed / path.name).write_bytes(path.read_bytes())
    (changed / "config.json").write_text((source / "config.json").read_text() + "\n")
    assert quantized_dir(changed, "int8", "channel").name != first.name
