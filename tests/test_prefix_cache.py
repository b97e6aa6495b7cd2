"""The reused key/value cache of the prompt's constant head: same tokens and distributions as a cold run."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.judge import Generation, create_backend
from core.judge.common import common_prefix_length
from core.judge.transformers_backend import TransformersJudge, constant_prompt_prefix
from core.prompt import GLIDER_TEMPLATE, build_prompt
from tests import tiny_model
from tests.fakes import WELL_FORMED

HEAD = GLIDER_TEMPLATE.split("{data}", 1)[0]


@pytest.fixture(scope="module")
def warm(trained_model_dir: Path) -> TransformersJudge:
    return create_backend("transformers", model=str(trained_model_dir), quantization="none")


@pytest.fixture(scope="module")
def cold(trained_model_dir: Path) -> TransformersJudge:
    return create_backend("transformers", model=str(trained_model_dir), quantization="none", prefix_cache=False)


def _prompts(taught_prompt: str) -> dict[str, str]:
    # Cut mid-word inside the instructions, so the prompt's ids leave the stored prefix's before its end.
    cut = HEAD.index("carefully") + len("caref")
    return {
        "taught": taught_prompt,
        "other data": build_prompt(
            {"CONTEXT": "Berlin is the capital of Germany.", "USER INPUT": "Capital?", "MODEL OUTPUT": "Munich."},
            "Is the MODEL OUTPUT faithful to the CONTEXT?",
            "1: Unfaithful.\n2: Partly faithful.\n3: Faithful.",
        ),
        "long data": build_prompt({"MODEL OUTPUT": "It repeats. " * 60}, "Is it concise?", "0: No\n1: Yes"),
        "diverges inside the head": HEAD[:cut] + "ully, then stop.",
        "no common head": "Say hello.",
    }


def test_the_prefix_is_the_chat_opening_and_the_instructions(warm: TransformersJudge) -> None:
    text = constant_prompt_prefix(warm.tokenizer)
    assert text.endswith("Data to evaluate:\n") and text.startswith("<|user|>")
    assert warm.tokenizer.decode(list(warm.prefix_ids)).endswith("Data to evaluate:\n")
    if tiny_model.has_real_tokenizer():
        assert len(warm.prefix_ids) == 204  # the figure the CPU notes measured with GLIDER's tokenizer


def test_reusable_prefix_counts_only_matching_ids(warm: TransformersJudge, taught_prompt: str) -> None:
    prompts = _prompts(taught_prompt)
    prefix = len(warm.prefix_ids)
    assert warm.reusable_prefix(warm.chat_ids(prompts["taught"])) == prefix
    diverging = warm.chat_ids(prompts["diverges inside the head"])
    assert 0 < warm.reusable_prefix(diverging) < prefix
    assert warm.reusable_prefix(diverging) == common_prefix_length(diverging, warm.prefix_ids)
    # At least one id is always left for generate to process.
    assert warm.reusable_prefix(list(warm.prefix_ids)) == prefix - 1
    # Past Phi-3's original context, RoPE switches factors and every key is recomputed: no reuse.
    long_ids = list(warm.prefix_ids) + [warm.prefix_ids[-1]] * warm.model.config.original_max_position_embeddings
    assert warm.reusable_prefix(long_ids) == 0


def _same(first: Generation, second: Generation) -> None:
    assert first.text == second.text
    assert (first.prompt_tokens, first.completion_tokens, first.finish_reason) == (
        second.prompt_tokens, second.completion_tokens, second.finish_reason
    )
    if first.distribution is None:
        assert second.distribution is None
    else:
        assert second.distribution is not None and set(first.distribution) == set(second.distribution)
        for value, probability in first.distribution.items():
            assert second.distribution[value] == pytest.approx(probability, abs=1e-5), value
        assert second.distribution_mass == pytest.approx(first.distribution_mass, rel=1e-4)


@pytest.mark.parametrize("name", ["taught", "other data", "long data", "diverges inside the head", "no common head"])
@pytest.mark.parametrize("scale", [(0, 1), (0, 10)])
def test_generate_matches_a_cold_run(
    warm: TransformersJudge, cold: TransformersJudge, taught_prompt: str, name: str, scale: tuple[int, int]
) -> None:
    prompt = _prompts(taught_prompt)[name]
    expected = cold.generate(prompt, scale=scale, max_new_tokens=120)
    actual = warm.generate(prompt, scale=scale, max_new_tokens=120)
    _same(expected, actual)
    assert actual.settings["prefix_cached_tokens"] == warm.reusable_prefix(warm.chat_ids(prompt))
    assert expected.settings["prefix_cached_tokens"] == 0
    if name == "taught":
        assert actual.text == WELL_FORMED and actual.distribution is not None


def test_stream_matches_a_cold_run_and_leaves_the_prefix_intact(
    warm: TransformersJudge, cold: TransformersJudge, taught_prompt: str
) -> None:
    for prompt in _prompts(taught_prompt).values():
        events = list(warm.stream(prompt, scale=(0, 1), max_new_tokens=60))
        final = events[-1]
        assert isinstance(final, Generation) and "".join(e for e in events[:-1] if isinstance(e, str)) == final.text
        _same(cold.generate(prompt, scale=(0, 1), max_new_tokens=60), final)
        # Every call extends its own copy; the stored prefix keeps exactly the prefix.
        assert warm._prefix_state.get_seq_length() == len(warm.prefix_ids)


def test_a_stream_left_early_does_not_spoil_the_next(warm: TransformersJudge, taught_prompt: str) -> None:
    stream = warm.stream(taught_prompt, scale=(0, 1))
    next(stream)
    stream.close()
    assert warm.generate(taught_prompt, scale=(0, 1)).text == WELL_FORMED


def test_batches_still_match_single_generations(warm: TransformersJudge, taught_prompt: str) -> None:
    prompts = list(_prompts(taught_prompt).values())
    rows = warm.generate_batch(prompts, scales=[(0, 1)] * len(prompts), max_new_tokens=60)
    for prompt, row in zip(prompts, rows, strict=True):
        assert isinstance(row, Generation)
        _same(warm.generate(prompt, scale=(0, 1), max_new_tokens=60), row)
