"""The embedded model: a small Llama-architecture Hugging Face model directory, built locally.

`build_tiny_model(out)` writes config.json, generation_config.json, a byte-level BPE tokenizer
trained on the project's own seeded corpus (with a chat template), and seeded random bf16 weights
in safetensors. Everything is a function of the seed, so two builds are byte-identical, and
nothing is downloaded. Random weights are what vLLM itself profiles with (`--load-format dummy`):
a serving comparison needs the real architecture and real token counts, not good prose.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from stacks.errors import ModelMissing
from stacks.spec import PROJECT_ROOT
from workloads.corpus import documents

DEFAULT_MODEL_DIR = PROJECT_ROOT / "models" / "tiny"

BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
HEADER_START, HEADER_END = "<|start_header_id|>", "<|end_header_id|>"
SPECIAL_TOKENS = [BOS, EOS, HEADER_START, HEADER_END, EOT]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


@dataclass(frozen=True)
class TinyModelConfig:
    seed: int = 0
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 768
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 4
    max_position_embeddings: int = 2048
    corpus_documents: int = 20_000
    init_std: float = 0.02

    def __post_init__(self) -> None:
        sizes = (self.vocab_size, self.hidden_size, self.intermediate_size, self.num_layers,
                 self.num_heads, self.num_kv_heads, self.corpus_documents)
        if min(sizes) < 1:
            raise ValueError(f"model sizes must be positive: {self}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size must be a multiple of num_heads, and num_heads of "
                             f"num_kv_heads; got {self.hidden_size}, {self.num_heads}, "
                             f"{self.num_kv_heads}")


def build_tiny_model(out: Path, config: TinyModelConfig | None = None) -> Path:
    """Write the model directory at `out`, replacing what is there only once the build is done."""
    config = config or TinyModelConfig()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        ids, vocab_size = _write_tokenizer(staging, config)
        _write_configs(staging, config, ids, vocab_size)
        _write_weights(staging, config, vocab_size)
        (staging / "build.json").write_text(json.dumps(asdict(config), indent=2, sort_keys=True))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out


def _write_tokenizer(directory: Path, config: TinyModelConfig) -> tuple[dict[str, int], int]:
    """Train and save the tokenizer; returns the special tokens' ids and the vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents(config.seed, config.corpus_documents), trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOT,
        pad_token=EOS,
        chat_template=CHAT_TEMPLATE,
        model_max_length=config.max_position_embeddings,
    )
    wrapped.save_pretrained(str(directory))
    ids: dict[str, int] = {}
    for token in SPECIAL_TOKENS:
        token_id = tokenizer.token_to_id(token)
        assert token_id is not None, f"special token {token} missing after training"
        ids[token] = token_id
    # The embedding table is sized from the trained vocabulary, so every id the model can emit
    # decodes to text.
    return ids, tokenizer.get_vocab_size()


def _write_configs(directory: Path, config: TinyModelConfig, ids: dict[str, int],
                   vocab_size: int) -> None:
    from transformers import LlamaConfig

    llama = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads,
        max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=1e-5,
        bos_token_id=ids[BOS],
        eos_token_id=[ids[EOS], ids[EOT]],
        pad_token_id=ids[EOS],
        tie_word_embeddings=False,
        architectures=["LlamaForCausalLM"],
        dtype="bfloat16",
    )
    llama.save_pretrained(str(directory))
    generation = {"bos_token_id": ids[BOS], "eos_token_id": [ids[EOS], ids[EOT]],
                  "pad_token_id": ids[EOS]}
    (directory / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")


def _write_weights(directory: Path, config: TinyModelConfig, vocab_size: int) -> None:
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(config.seed)
    hidden, inner = config.hidden_size, config.intermediate_size
    head_dim = hidden // config.num_heads
    kv = config.num_kv_heads * head_dim

    def normal(*shape: int) -> torch.Tensor:
        weight = torch.randn(*shape, generator=generator, dtype=torch.float32)
        return (weight * config.init_std).to(torch.bfloat16)

    def ones(size: int) -> torch.Tensor:
        return torch.ones(size, dtype=torch.bfloat16)

    tensors = {"model.embed_tokens.weight": normal(vocab_size, hidden)}
    for layer in range(config.num_layers):
        prefix = f"model.layers.{layer}"
        tensors |= {
            f"{prefix}.self_attn.q_proj.weight": normal(hidden, hidden),
            f"{prefix}.self_attn.k_proj.weight": normal(kv, hidden),
            f"{prefix}.self_attn.v_proj.weight": normal(kv, hidden),
            f"{prefix}.self_attn.o_proj.weight": normal(hidden, hidden),
            f"{prefix}.mlp.gate_proj.weight": normal(inner, hidden),
            f"{prefix}.mlp.up_proj.weight": normal(inner, hidden),
            f"{prefix}.mlp.down_proj.weight": normal(hidden, inner),
            f"{prefix}.input_layernorm.weight": ones(hidden),
            f"{prefix}.post_attention_layernorm.weight": ones(hidden),
        }
    tensors["model.norm.weight"] = ones(hidden)
    tensors["lm_head.weight"] = normal(vocab_size, hidden)
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})


def ensure_model_dir(directory: Path, needed: str, owner: str) -> Path:
    """`directory`, which must hold the file `needed`; the embedded model is built there on
    first use, any other directory is the user's to provide."""
    if (directory / needed).is_file():
        return directory
    if directory.resolve() == DEFAULT_MODEL_DIR.resolve():
        return build_tiny_model(directory)
    raise ModelMissing(f"{owner}: model directory {directory} has no {needed}; point it at a "
                       "Hugging Face model directory (`harness model build` builds the "
                       "embedded one)")
