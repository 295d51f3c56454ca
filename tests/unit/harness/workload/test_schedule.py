from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from harness.workload.schedule import build_schedule, draw_lengths, load_tokenizer
from harness.workload.spec import WORKLOADS_DIR, LengthSpec, WorkloadSpec, load_workload_spec
from workloads.schedule import read_schedule, write_schedule

DEFAULT_SCHEDULE = WORKLOADS_DIR / "schedules" / "writing_assistant.jsonl"


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return load_tokenizer(WorkloadSpec(name="w", rate_qps=1, duration_s=1).tokenizer_path())


def test_same_spec_same_bytes(tokenizer: Tokenizer, tmp_path: Path) -> None:
    spec = WorkloadSpec(name="w", rate_qps=20, duration_s=5, warmup_s=1, seed=7)
    first = write_schedule(build_schedule(spec, tokenizer), tmp_path / "a.jsonl")
    second = write_schedule(build_schedule(spec, tokenizer), tmp_path / "b.jsonl")
    assert first == second == hashlib.sha256((tmp_path / "a.jsonl").read_bytes()).hexdigest()
    other = write_schedule(build_schedule(spec.model_copy(update={"seed": 8}), tokenizer),
                           tmp_path / "c.jsonl")
    assert other != first


def test_entries_carry_offsets_lengths_and_prompts(tokenizer: Tokenizer, tmp_path: Path) -> None:
    spec = WorkloadSpec(name="w", rate_qps=50, duration_s=20, warmup_s=2,
                        output_tokens=LengthSpec(distribution="uniform", mean=30, min=10, max=50))
    schedule = build_schedule(spec, tokenizer)
    digest = write_schedule(schedule, tmp_path / "s.jsonl")
    loaded, loaded_digest = read_schedule(tmp_path / "s.jsonl")
    assert loaded == schedule
    assert loaded_digest == digest
    offsets = np.array([entry.offset_s for entry in schedule.entries])
    assert np.all(np.diff(offsets) >= 0)
    assert offsets[-1] < 22
    assert schedule.header["requests"] == len(schedule.entries)
    assert schedule.header["last_offset_s"] == offsets[-1]
    assert 0.9 * 1100 < len(offsets) < 1.1 * 1100
    outputs = [entry.max_tokens for entry in schedule.entries]
    assert min(outputs) >= 10
    assert max(outputs) <= 50
    for entry in schedule.entries[:50]:
        counted = len(tokenizer.encode(entry.prompt, add_special_tokens=False).ids)
        assert abs(counted - entry.prompt_tokens) <= 1  # a cut may re-merge one token
    prompts = np.array([entry.prompt_tokens for entry in schedule.entries])
    assert 47 < prompts.mean() < 53
    assert all(entry.prompt.split(":")[0] for entry in schedule.entries)


@pytest.mark.parametrize(("spec", "mean", "stdev"), [
    (LengthSpec(distribution="fixed", mean=50), 50, 0),
    (LengthSpec(distribution="normal", mean=50, stdev=10), 50, 10),
    (LengthSpec(distribution="lognormal", mean=50, stdev=20, max=1000), 50, 20),
    (LengthSpec(distribution="uniform", mean=30, min=10, max=50), 30, 41 / np.sqrt(12)),
])
def test_length_draws_have_the_asked_moments(spec: LengthSpec, mean: float,
                                             stdev: float) -> None:
    lengths = draw_lengths(spec, 100_000, np.random.default_rng(0))
    assert lengths.dtype == np.int64
    assert lengths.mean() == pytest.approx(mean, rel=0.02)
    assert lengths.std() == pytest.approx(stdev, rel=0.03, abs=0.01)
    assert lengths.min() >= spec.min
    assert lengths.max() <= spec.max


def test_the_shipped_default_schedule_is_the_default_workloads(tokenizer: Tokenizer,
                                                              tmp_path: Path) -> None:
    """Plain `locust -f workloads/writing_assistant.py` replays this file; it must not drift
    from what the harness builds for the same workload."""
    spec = load_workload_spec("writing_assistant")
    built = write_schedule(build_schedule(spec, tokenizer), tmp_path / "s.jsonl")
    assert built == hashlib.sha256(DEFAULT_SCHEDULE.read_bytes()).hexdigest(), (
        "regenerate with: harness schedule writing_assistant "
        "--out workloads/schedules/writing_assistant.jsonl (or, if models/tiny was built by an "
        "older version, rebuild it first: harness model build)")
