"""Batched generation on the transformers back-end: every row must be what `generate` gives it alone."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.errors import ContextTooLongError, InputError, JudgeError
from core.grading import GradeRequest, GradeResult, grade, grade_batch
from core.judge import Generation, create_backend
from core.judge.base import BatchingBackend
from core.judge.logit_distribution import row_cache
from core.judge.transformers_backend import TransformersJudge
from core.prompt import build_prompt
from tests import tiny_model
from tests.conftest import TEACH_CRITERIA, TEACH_FIELDS, TEACH_RUBRIC
from tests.fakes import WELL_FORMED

RUBRIC_0_10 = "\n".join(f"{value}: {'faithful' if value > 5 else 'not faithful'} ({value}/10)." for value in range(11))


def variant(extra_context: str = "", extra_output: str = "", rubric: str = TEACH_RUBRIC) -> str:
    """The taught prompt with more text, so the rows of a batch differ in content and in padding."""
    fields = {
        "CONTEXT": TEACH_FIELDS["CONTEXT"] + extra_context,
        "MODEL OUTPUT": TEACH_FIELDS["MODEL OUTPUT"] + extra_output,
    }
    return build_prompt(fields, TEACH_CRITERIA, rubric)


def mixed_prompts(taught_prompt: str) -> list[str]:
    """Five prompts of different lengths; the taught one twice, never the longest (so it is padded)."""
    return [
        variant(" It lies on the Seine." * 3),
        taught_prompt,
        variant(" It lies on the Seine."),
        variant(extra_output=" Berlin is not."),
        variant(" Lyon is a city in France." * 6),
        taught_prompt,
    ]


def assert_same(batched: object, single: Generation) -> None:
    """A batch row is the single-prompt Generation: text, counts, finish, warnings, distribution to 1e-5."""
    assert isinstance(batched, Generation), batched
    assert batched.text == single.text
    assert (batched.prompt_tokens, batched.completion_tokens) == (single.prompt_tokens, single.completion_tokens)
    assert batched.finish_reason == single.finish_reason
    assert batched.warnings == single.warnings
    if single.distribution is None:
        assert batched.distribution is None and batched.distribution_mass is None
    else:
        assert batched.distribution is not None and set(batched.distribution) == set(single.distribution)
        for value, probability in single.distribution.items():
            assert batched.distribution[value] == pytest.approx(probability, abs=1e-5), value
            # The trained judge gives the other values ~1e-7 (10 ~1e-9): only a relative check sees them.
            assert batched.distribution[value] == pytest.approx(probability, rel=1e-4, abs=1e-12), value
        assert batched.distribution_mass == pytest.approx(single.distribution_mass, abs=1e-5)


@pytest.fixture(scope="module")
def untrained_judge(untrained_model_dir: Path) -> TransformersJudge:
    return create_backend("transformers", model=str(untrained_model_dir), quantization="none")


# -- batched == one at a time -------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [(0, 1), (0, 10)], ids=["0-1", "0-10"])
def test_trained_batch_matches_one_at_a_time(
    trained_judge: TransformersJudge, taught_prompt: str, scale: tuple[int, int]
) -> None:
    """On 0-10 the taught answer's '1' shares its first token with '10': the multi-token path, per row."""
    prompts = mixed_prompts(taught_prompt)
    assert len({trained_judge.count_tokens(p) for p in prompts}) == 5  # five lengths: the padding differs
    batched = trained_judge.generate_batch(prompts, scales=[scale] * len(prompts), max_new_tokens=100)
    singles = [trained_judge.generate(p, scale=scale, max_new_tokens=100) for p in prompts]
    assert len(batched) == len(prompts)
    for row, single in zip(batched, singles, strict=True):
        assert_same(row, single)
    # The taught rows (padded, at rows 1 and 5) wrote the taught answer and have a distribution to compare.
    assert batched[1].text == batched[5].text == WELL_FORMED and batched[1].finish_reason == "stop"
    assert batched[1].distribution is not None and set(batched[1].distribution) == set(range(scale[0], scale[1] + 1))
    assert batched[0].text != WELL_FORMED  # rows were not mixed up: another prompt, another answer
    assert len({row.completion_tokens for row in batched}) > 2  # rows stopped at different steps


def test_trained_batch_distribution_matches_an_uncached_forward_pass(
    trained_judge: TransformersJudge, taught_prompt: str
) -> None:
    """The padded row's 0-10 distribution, against plain forward passes over its unpadded tokens."""
    from tests.test_judge_transformers import _reference_next_probs, _score_prefix

    prompts = [variant(" It lies on the Seine." * 4), taught_prompt]
    generation = trained_judge.generate_batch(prompts, scales=[(0, 10)] * 2, max_new_tokens=100)[1]
    assert isinstance(generation, Generation) and generation.distribution is not None
    prefix = _score_prefix(trained_judge, taught_prompt, generation)
    digit = {d: trained_judge.tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    first = _reference_next_probs(trained_judge, prefix)
    after_one = _reference_next_probs(trained_judge, prefix + [digit[1]])
    p_more = float(sum(after_one[t] for t in digit.values()))
    expected = {d: float(first[digit[d]]) for d in range(10)}
    expected[10] = float(first[digit[1]] * after_one[digit[0]])
    expected[1] = float(first[digit[1]]) * (1 - p_more)
    total = sum(expected.values())
    for value in range(11):
        assert generation.distribution[value] == pytest.approx(expected[value] / total, abs=1e-5), value
        assert generation.distribution[value] == pytest.approx(expected[value] / total, rel=1e-3), value
    assert generation.distribution_mass == pytest.approx(total, rel=1e-4)


@pytest.mark.parametrize("scale", [(0, 1), (0, 10)], ids=["0-1", "0-10"])
def test_untrained_batch_matches_one_at_a_time(
    untrained_judge: TransformersJudge, taught_prompt: str, scale: tuple[int, int]
) -> None:
    prompts = [
        variant(" Lyon is a city in France." * 5, rubric=RUBRIC_0_10 if scale == (0, 10) else TEACH_RUBRIC),
        taught_prompt,
        variant(extra_output=" Berlin is not."),
    ]
    batched = untrained_judge.generate_batch(prompts, scales=[scale] * 3, max_new_tokens=16)
    for prompt, row in zip(prompts, batched, strict=True):
        single = untrained_judge.generate(prompt, scale=scale, max_new_tokens=16)
        assert_same(row, single)
        assert row.completion_tokens == 16 and row.finish_reason == "length"  # random weights never stop here


def test_row_cache_continues_a_padded_row_like_an_unpadded_forward_pass(untrained_judge: TransformersJudge) -> None:
    """The multi-token score path on random weights: a left-padded row's cache, cut out and extended."""
    import torch

    from core.judge.logit_distribution import ScoreLocator

    model, pad = untrained_judge.model, untrained_judge.tokenizer.pad_token_id
    short = untrained_judge.chat_ids(variant())
    long = untrained_judge.chat_ids(variant(" Lyon is a city in France." * 4))
    padding = len(long) - len(short)
    assert padding > 10
    input_ids = torch.tensor([[pad] * padding + short, long])
    mask = torch.tensor([[0] * padding + [1] * len(short), [1] * len(long)])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        cache = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True).cache
    context = (short[-2], short[-1])
    keep = len(short) - len(context)
    own = row_cache(model, cache, 0, padding, keep)
    assert own is not cache and own.get_seq_length() == keep
    got = ScoreLocator._next_log_probs(model, own, keep, context)
    with torch.inference_mode():
        reference = torch.log_softmax(model(input_ids=torch.tensor([short])).logits[0, -1].float(), dim=-1)
    assert torch.allclose(got, reference, atol=1e-5)
    assert cache.get_seq_length() == len(long)  # the batch's cache is left as it was, for the other rows
    # The test can tell: forgetting the padding feeds the row pad keys and wrong positions.
    wrong = ScoreLocator._next_log_probs(model, row_cache(model, cache, 0, 0, keep), keep, context)
    assert not torch.allclose(wrong, reference, atol=1e-3)


# -- the contract's edges ----------------------------------------------------------------------------
def test_batch_of_one_and_empty_batch(trained_judge: TransformersJudge, taught_prompt: str) -> None:
    assert isinstance(trained_judge, BatchingBackend)
    assert trained_judge.generate_batch([], scales=[]) == []
    (row,) = trained_judge.generate_batch([taught_prompt], scales=[(0, 1)], max_new_tokens=100)
    assert_same(row, trained_judge.generate(taught_prompt, scale=(0, 1), max_new_tokens=100))
    assert isinstance(row, Generation) and row.settings["batch_size"] == 1
    # A batch of one is what each /grade call is: it reuses the cached prompt head like the single path.
    assert row.settings["prefix_cached_tokens"] > 0
    (refused,) = trained_judge.generate_batch(["word " * 200_000], scales=[None])
    assert isinstance(refused, ContextTooLongError)  # returned in its place, as in a longer batch
    assert row.settings["stop_token_ids"] == trained_judge.stop_token_ids and row.settings["do_sample"] is False


@pytest.mark.timing
def test_batch_timing_is_amortised(trained_judge: TransformersJudge, taught_prompt: str) -> None:
    prompts = [taught_prompt, variant(" It lies on the Seine.")]
    started = time.perf_counter()
    rows = trained_judge.generate_batch(prompts, scales=[(0, 1)] * 2, max_new_tokens=100)
    wall = time.perf_counter() - started
    assert all(isinstance(row, Generation) for row in rows)
    assert rows[0].seconds == rows[1].seconds and 0 < rows[0].seconds * 2 <= wall
    assert rows[0].first_token_seconds is None
    assert [row.settings["batch_size"] for row in rows] == [2, 2]


def test_bad_arguments_are_refused(trained_judge: TransformersJudge, taught_prompt: str) -> None:
    with pytest.raises(ValueError, match="2 prompts but 1 scales"):
        trained_judge.generate_batch([taught_prompt, taught_prompt], scales=[(0, 1)])
    with pytest.raises(JudgeError, match="at least 1"):
        trained_judge.generate_batch([taught_prompt], scales=[(0, 1)], max_new_tokens=0)


def test_an_error_that_stops_the_whole_batch_is_raised(
    trained_judge: TransformersJudge, taught_prompt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(**kwargs: object) -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trained_judge.model, "generate", out_of_memory)
    with pytest.raises(JudgeError, match="out of memory.*fewer than 2 items"):
        trained_judge.generate_batch([taught_prompt, taught_prompt], scales=[(0, 1)] * 2)
    assert trained_judge.generation_lock.acquire(blocking=False)  # and the model is free again
    trained_judge.generation_lock.release()


# -- the context guard, row by row ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_context_judge(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer, taught_prompt: str):  # noqa: ANN001, ANN201
    """An untrained tiny judge that reads only 150 tokens more than the taught prompt."""
    chat = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": taught_prompt}], tokenize=False, add_generation_prompt=True
    )
    base = len(tiny_tokenizer(chat, add_special_tokens=False)["input_ids"])
    model = tiny_model.build_model(tiny_tokenizer, max_positions=base + 150)
    directory = tiny_model.save(model, tiny_tokenizer, tmp_path_factory.mktemp("short-context-judge"))
    return create_backend("transformers", model=str(directory), quantization="none")


def _prompt_with_tokens(judge: TransformersJudge, low: int, high: int) -> str:
    """A variant of the taught prompt whose chat-formatted length lies in [low, high]."""
    for words in range(1, 400):
        prompt = variant(extra_output=" and more" * words)
        if low <= judge.count_tokens(prompt) <= high:
            return prompt
    raise AssertionError(f"no variant has between {low} and {high} tokens")


def test_over_long_row_is_refused_in_place_and_a_tight_row_does_not_shorten_the_others(
    short_context_judge: TransformersJudge, taught_prompt: str
) -> None:
    judge, limit = short_context_judge, 100
    tight = _prompt_with_tokens(judge, judge.max_context - limit + 1, judge.max_context - 64)  # room < limit
    too_long = _prompt_with_tokens(judge, judge.max_context - 60, judge.max_context + 40)
    prompts = [taught_prompt, too_long, tight, variant(" It lies on the Seine.")]
    rows = judge.generate_batch(prompts, scales=[(0, 1)] * 4, max_new_tokens=limit)
    assert isinstance(rows[1], ContextTooLongError) and "reads at most" in str(rows[1])
    with pytest.raises(ContextTooLongError):
        judge.generate(too_long, max_new_tokens=limit)
    for index in (0, 2, 3):
        assert_same(rows[index], judge.generate(prompts[index], scale=(0, 1), max_new_tokens=limit))
    room = judge.max_context - judge.count_tokens(tight)
    assert rows[2].completion_tokens == room < limit and any("lowered" in w for w in rows[2].warnings)
    assert rows[0].completion_tokens == rows[3].completion_tokens == limit  # not cut to the tight row's room
    assert rows[0].settings["batch_size"] == 2 and rows[2].settings["batch_size"] == 1  # two groups


# -- grade_batch ---------------------------------------------------------------------------------------
def test_grade_batch_gives_the_judgments_grade_gives(trained_judge: TransformersJudge) -> None:
    requests = [
        GradeRequest(fields=TEACH_FIELDS, pass_criteria=TEACH_CRITERIA, rubric=TEACH_RUBRIC, max_new_tokens=100),
        GradeRequest(fields={}, pass_criteria=TEACH_CRITERIA, rubric=TEACH_RUBRIC, max_new_tokens=100),
        GradeRequest(
            fields={**TEACH_FIELDS, "CONTEXT": TEACH_FIELDS["CONTEXT"] + " It lies on the Seine." * 3},
            pass_criteria=TEACH_CRITERIA, rubric=TEACH_RUBRIC, max_new_tokens=100,
        ),
    ]
    batched = grade_batch(trained_judge, requests)
    assert isinstance(batched[1], InputError)  # the empty request fails alone, in its place
    for index in (0, 2):
        result, single = batched[index], grade(trained_judge, requests[index])
        assert isinstance(result, GradeResult)
        assert result.judgment == single.judgment
        assert (result.spans, result.ungrounded, result.warnings) == (single.spans, single.ungrounded, single.warnings)
        assert_same(result.generation, single.generation)
        assert result.repro["decoding"]["batch_size"] == 2
    assert (batched[0].judgment.status, batched[0].judgment.score) == ("ok", 1)
    assert batched[0].confidence == pytest.approx(grade(trained_judge, requests[0]).confidence, abs=1e-5)


# -- one generation at a time --------------------------------------------------------------------------
def test_stream_and_batch_in_two_threads_take_turns(
    trained_judge: TransformersJudge, taught_prompt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = trained_judge.model.generate
    active, peak, calls = [0], [0], [0]
    guard = threading.Lock()

    def counting_generate(**kwargs: object) -> object:
        with guard:
            active[0] += 1
            calls[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.2)  # widen the window in which a second generation could start
            return original(**kwargs)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(trained_judge.model, "generate", counting_generate)
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def streamed() -> None:
        try:
            results["stream"] = list(trained_judge.stream(taught_prompt, scale=(0, 1), max_new_tokens=100))
        except BaseException as exc:  # noqa: BLE001 - the assertion below reports it
            errors.append(exc)

    def batched() -> None:
        try:
            results["batch"] = trained_judge.generate_batch(
                [variant(" It lies on the Seine."), taught_prompt], scales=[(0, 1)] * 2, max_new_tokens=100
            )
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=streamed), threading.Thread(target=batched)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert calls[0] == 2 and peak[0] == 1  # both generated, never at the same time
    events = results["stream"]
    assert isinstance(events, list) and isinstance(events[-1], Generation) and events[-1].text == WELL_FORMED
    rows = results["batch"]
    assert isinstance(rows, list) and rows[1].text == WELL_FORMED
    assert rows[1].distribution == pytest.approx(events[-1].distribution, abs=1e-5)


def test_a_stream_closed_early_stops_generating_before_the_model_is_free(
    untrained_judge: TransformersJudge, taught_prompt: str
) -> None:
    """A reader that leaves (a closed browser tab) must not leave generate running once the lock is released."""
    events = untrained_judge.stream(taught_prompt, max_new_tokens=2000)
    assert isinstance(next(events), str)
    events.close()
    assert not any(t.name == "glider-generate" and t.is_alive() for t in threading.enumerate())
    assert untrained_judge.generation_lock.acquire(blocking=False)
    untrained_judge.generation_lock.release()
