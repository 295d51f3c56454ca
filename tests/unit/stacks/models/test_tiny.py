from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open
from transformers import AutoTokenizer

from stacks.models.tiny import TinyModelConfig, build_tiny_model


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_two_builds_are_byte_identical(tmp_path: Path) -> None:
    first = files(build_tiny_model(tmp_path / "a"))
    second = files(build_tiny_model(tmp_path / "b"))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(first)
    assert first == second


def test_a_different_seed_gives_different_weights(tmp_path: Path) -> None:
    a = build_tiny_model(tmp_path / "a", TinyModelConfig(corpus_documents=2000))
    b = build_tiny_model(tmp_path / "b", TinyModelConfig(seed=1, corpus_documents=2000))
    assert (a / "model.safetensors").read_bytes() != (b / "model.safetensors").read_bytes()


def test_model_is_a_small_bf16_llama_with_a_chat_template(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path / "m")
    config = json.loads((model / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_hidden_layers"], config["hidden_size"]) == (4, 256)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    assert len(tokenizer) == config["vocab_size"] == 4096
    with safe_open(str(model / "model.safetensors"), framework="pt") as weights:
        embed = weights.get_tensor("model.embed_tokens.weight")
        assert tuple(embed.shape) == (4096, 256)
        assert str(embed.dtype) == "torch.bfloat16"
        assert "lm_head.weight" in weights.keys()  # noqa: SIM118 - safe_open has no __contains__
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Fix: their late"}],
                                           tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    # The vocabulary is trained on writing-assistant text, so its words are few tokens.
    assert len(tokenizer("Could you review the quarterly report by Friday?")["input_ids"]) <= 12


def test_impossible_sizes_are_refused_before_building() -> None:
    with pytest.raises(ValueError, match="multiple of num_heads"):
        TinyModelConfig(hidden_size=250)


def test_a_failed_build_leaves_the_previous_model_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_tiny_model(tmp_path / "m", TinyModelConfig(corpus_documents=2000))
    before = files(model)

    def disk_full(*args: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr("stacks.models.tiny._write_weights", disk_full)
    with pytest.raises(OSError, match="No space"):
        build_tiny_model(model, TinyModelConfig(corpus_documents=2000, seed=5))
    assert files(model) == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
