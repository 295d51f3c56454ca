"""Building the schedule: every request a run will send, fixed before anything starts.

A workload spec plus its seed becomes a list of (send offset, prompt, max_tokens): arrivals
from `harness.workload.arrivals`, prompts of writing-assistant tasks cut to a drawn token
count with the model's tokenizer, output lengths drawn per request. The file it is saved as is
the contract `workloads.schedule` defines. Same spec, seed and tokenizer give the same bytes
anywhere.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from harness.workload.arrivals import arrival_offsets
from harness.workload.spec import LengthSpec, WorkloadSpec
from stacks.models.prepare import model_dir
from workloads.corpus import TASKS, sentence, with_slip
from workloads.schedule import SCHEDULE_VERSION, Schedule, ScheduleEntry

# Text in this tokenizer runs ~5 characters per token (measured on the embedded model):
# generating 6 per wanted token nearly always leaves enough to cut at the right token.
CHARS_PER_TOKEN_GENERATED = 6


def load_tokenizer(directory: Path) -> Tokenizer:
    """The tokenizer of a model directory; the embedded model is built on first use."""
    found = model_dir(directory, "tokenizer.json", "workload tokenizer")
    return Tokenizer.from_file(str(found / "tokenizer.json"))


def draw_lengths(spec: LengthSpec, count: int, rng: np.random.Generator) -> np.ndarray:
    if spec.distribution == "fixed":
        values = np.full(count, spec.mean)
    elif spec.distribution == "normal":
        values = rng.normal(spec.mean, spec.stdev, count)
    elif spec.distribution == "uniform":
        values = rng.uniform(spec.min, spec.max + 1, count)
    else:  # lognormal with the given mean and stdev of the lengths themselves
        sigma2 = np.log1p((spec.stdev / spec.mean) ** 2)
        values = rng.lognormal(np.log(spec.mean) - sigma2 / 2, np.sqrt(sigma2), count)
    return np.clip(np.floor(values + 0.5), spec.min, spec.max).astype(np.int64)


def writing_text(rng: random.Random, tokens: int) -> str:
    """A writing-assistant task ("Fix the grammar: ...") with text for at least `tokens`."""
    text = f"{rng.choice(TASKS)}:"
    while len(text) < tokens * CHARS_PER_TOKEN_GENERATED:
        text += " " + sentence(rng)
        if rng.random() < 0.3:
            text = with_slip(rng, text)
    return text


def cut_prompts(texts: list[str], lengths: np.ndarray,
                tokenizer: Tokenizer) -> list[tuple[str, int]]:
    """Each text cut at the token boundary after its wanted length, with its token count.
    One batch call: the tokenizer encodes in parallel, outside the interpreter."""
    cut = []
    for text, wanted, encoding in zip(texts, lengths.tolist(),
                                      tokenizer.encode_batch(texts, add_special_tokens=False),
                                      strict=True):
        if len(encoding.ids) <= wanted:
            cut.append((text, len(encoding.ids)))
        else:
            cut.append((text[:encoding.offsets[wanted - 1][1]], wanted))
    return cut


def build_schedule(spec: WorkloadSpec, tokenizer: Tokenizer) -> Schedule:
    arrivals_seed, prompt_seed, output_seed, text_seed = np.random.SeedSequence(spec.seed).spawn(4)
    offsets = arrival_offsets(spec.segments(), spec.arrival, np.random.default_rng(arrivals_seed))
    count = len(offsets)
    prompt_lengths = draw_lengths(spec.prompt_tokens, count, np.random.default_rng(prompt_seed))
    output_lengths = draw_lengths(spec.output_tokens, count, np.random.default_rng(output_seed))
    text_rng = random.Random(int(text_seed.generate_state(1)[0]))
    texts = [writing_text(text_rng, int(length)) for length in prompt_lengths]
    prompts = cut_prompts(texts, prompt_lengths, tokenizer)
    entries = [ScheduleEntry(index, round(float(offsets[index]), 6), int(output_lengths[index]),
                             prompt_tokens, prompt)
               for index, (prompt, prompt_tokens) in enumerate(prompts)]
    header = {
        "schedule_version": SCHEDULE_VERSION, "workload": spec.name, "api": spec.api,
        "stream": spec.stream, "ignore_eos": spec.ignore_eos, "timeout_s": spec.timeout_s,
        "max_in_flight": spec.max_in_flight, "warmup_s": spec.warmup_s,
        "measured_s": spec.measured_s, "seed": spec.seed, "requests": count,
        "last_offset_s": entries[-1].offset_s if entries else 0.0,
    }
    return Schedule(header, entries)

