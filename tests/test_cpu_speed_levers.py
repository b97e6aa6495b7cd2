"""The CPU speed levers change no token: int4 weights (core.judge.int4_cpu) and the growing float32 cache with
float32 attention (core.judge.cpu_decode), each checked against plain greedy decoding on the tiny judges."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import ModelLoadError
from core.judge import cpu_decode, create_backend, int4_cpu
from core.judge.transformers_backend import TransformersJudge, resolve_quantization
from core.parse import parse_output
from tests.fakes import WELL_FORMED


# -- int4 weights --------------------------------------------------------------------------------------------
def test_int4_weights_round_to_the_nearest_level_and_the_kernel_multiplies_what_they_stand_for() -> None:
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(128, 192, generator=generator).to(torch.bfloat16)
    packed, scales_and_zeros = int4_cpu.quantize_weight(weight)
    assert scales_and_zeros.shape == (192 // int4_cpu.GROUP_SIZE, 128, 2)
    restored = int4_cpu.dequantize(packed, scales_and_zeros)
    step = scales_and_zeros[..., 0].float().transpose(0, 1).repeat_interleave(int4_cpu.GROUP_SIZE, dim=1)
    error = (restored - weight.float()).abs()
    assert bool((error <= step / 2 + 1e-2 * step + 1e-6).all())  # half a level, up to bf16 rounding of the scale
    assert float(error.max()) > 0  # 4 bits cannot hold random weights exactly: this is not the identity
    rows = torch.randn(5, 192, generator=generator).to(torch.bfloat16)
    out = torch._weight_int4pack_mm_for_cpu(rows, packed, int4_cpu.GROUP_SIZE, scales_and_zeros)
    expected = rows.float() @ restored.T
    assert torch.allclose(out.float(), expected, rtol=2e-2, atol=2e-2 * float(expected.abs().max()))


def test_int4_linear_uses_the_kernel_for_steps_and_the_bf16_weights_for_prompts() -> None:
    linear = torch.nn.Linear(128, 64, bias=True).to(torch.bfloat16)
    summary = int4_cpu.quantize_linear_layers(torch.nn.Sequential(linear, torch.nn.Linear(64, 3)), keep_dense=True)
    assert summary.converted == 1 and summary.skipped == ("1",)  # 3 outputs: not a whole block of 64
    model = torch.nn.Sequential(linear)
    int4_cpu.quantize_linear_layers(model, keep_dense=True)
    layer = model[0]
    prompt = torch.randn(int4_cpu.DENSE_FROM_ROWS, 128).to(torch.bfloat16)
    assert torch.equal(layer(prompt), linear(prompt))  # exactly the bf16 weights
    step = prompt[:1]
    kernel = torch._weight_int4pack_mm_for_cpu(step, layer.packed, int4_cpu.GROUP_SIZE, layer.scales_and_zeros)
    assert torch.equal(layer(step), kernel + linear.bias)
    layer.dense = None
    assert torch.equal(layer(prompt[:2]), torch._weight_int4pack_mm_for_cpu(
        prompt[:2], layer.packed, int4_cpu.GROUP_SIZE, layer.scales_and_zeros) + linear.bias)


def test_int4_is_chosen_by_name_and_only_on_a_cpu() -> None:
    assert resolve_quantization("auto", "cpu") == resolve_quantization("auto", "cuda:0") == "nf4"  # as measured
    assert resolve_quantization("int4", "cpu") == "int4"
    with pytest.raises(ModelLoadError, match="CPU kernel"):
        resolve_quantization("int4", "cuda")


@pytest.mark.parametrize("keep", [True, False])
def test_the_int4_judge_writes_the_unquantized_judges_tokens(
    trained_model_dir: Path, trained_judge: TransformersJudge, taught_prompt: str, keep: bool
) -> None:
    judge = create_backend("transformers", model=str(trained_model_dir), quantization="int4", device="cpu",
                           keep_prompt_weights=keep)
    assert judge.info.quantization == "int4" and judge.info.dtype == "int4/bfloat16"
    layers = [m for m in judge.model.modules() if hasattr(m, "packed")]
    assert layers and all((m.dense is not None) is keep for m in layers)
    assert judge.info.kernel == judge.int4.describe() and judge.info.kernel in judge.info.describe()
    assert ("prompts on bf16 weights" in judge.info.kernel) is keep
    plain = trained_judge.generate(taught_prompt, scale=(0, 1), max_new_tokens=120)
    generation = judge.generate(taught_prompt, scale=(0, 1), max_new_tokens=120)
    assert generation.text == plain.text == WELL_FORMED
    assert parse_output(generation.text, (0, 1)).score == 1
    assert generation.distribution is not None and generation.distribution[1] > 0.5
    streamed = list(judge.stream(taught_prompt, scale=(0, 1), max_new_tokens=120))  # reuses the prefix's cache
    assert streamed[-1].text == WELL_FORMED and streamed[-1].settings["prefix_cached_tokens"] > 0


def test_int4_drops_the_bf16_weights_when_memory_is_short_and_says_so(
    trained_model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(int4_cpu, "available_memory_bytes", lambda: 1024**3)
    judge = create_backend("transformers", model=str(trained_model_dir), quantization="int4", device="cpu")
    assert all(m.dense is None for m in judge.model.modules() if hasattr(m, "packed"))
    assert "prompts through the int4 kernel too" in judge.info.kernel
    assert any("bf16 weights" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)


# -- the growing cache and float32 attention ----------------------------------------------------------------
def test_a_growing_layer_holds_what_concatenation_would_through_growth_crop_and_reuse(
    monkeypatch: pytest.MonkeyPatch, trained_judge: TransformersJudge
) -> None:
    from transformers import DynamicCache

    monkeypatch.setattr(cpu_decode, "_MIN_CAPACITY", 2)
    config = trained_judge.model.config
    growing, plain = cpu_decode.growing_cache(config, capacity=3), DynamicCache(config=config)
    generator = torch.Generator().manual_seed(0)
    heads, width = config.num_key_value_heads, config.hidden_size // config.num_attention_heads
    for tokens, crop in ((2, 0), (1, 0), (4, 0), (1, 2), (3, 0), (1, 0)):
        if crop:
            growing.crop(-crop)
            plain.crop(-crop)
        key = torch.randn(1, heads, tokens, width, generator=generator).to(torch.bfloat16)
        value = torch.randn(1, heads, tokens, width, generator=generator).to(torch.bfloat16)
        got_key, got_value = growing.update(key, value, 0)
        want_key, want_value = plain.update(key, value, 0)
        assert got_key.dtype == torch.float32  # the bf16 values, converted exactly
        assert torch.equal(got_key, want_key.float()) and torch.equal(got_value, want_value.float())
        assert growing.get_seq_length(0) == plain.get_seq_length(0)
    assert growing.layers[0]._key_buffer.shape[-2] >= 8  # it grew past its first capacity without losing a token
    # Beyond FLOAT32_MAX_TOKENS of room the cache keeps the model's dtype (float32 would double its memory).
    long = cpu_decode.growing_cache(config, capacity=cpu_decode.FLOAT32_MAX_TOKENS + 1)
    assert long.update(key, value, 0)[0].dtype == torch.bfloat16


@pytest.mark.parametrize("quantization", ["none", "nf4", "int4"])
def test_cpu_decoding_writes_the_tokens_of_transformers_own_cache_and_attention(
    trained_model_dir: Path, taught_prompt: str, quantization: str
) -> None:
    plain = TransformersJudge(str(trained_model_dir), quantization=quantization, device="cpu", cpu_decode=False,
                              quantized_cache=False, dtype="bfloat16")
    fast = TransformersJudge(str(trained_model_dir), quantization=quantization, device="cpu",
                             quantized_cache=False, dtype="bfloat16")
    assert fast.model.config._attn_implementation == cpu_decode.ATTENTION_NAME
    assert plain.model.config._attn_implementation != cpu_decode.ATTENTION_NAME
    for judge in (plain, fast):  # the second call reuses the prompt head's cache
        first, second = (judge.generate(taught_prompt, scale=(0, 1), max_new_tokens=120) for _ in range(2))
        assert first.text == second.text == WELL_FORMED, quantization
        assert second.settings["prefix_cached_tokens"] > 0
    a, b = (j.generate(taught_prompt, scale=(0, 1), max_new_tokens=120) for j in (plain, fast))
    assert a.distribution is not None and b.distribution is not None
    assert b.distribution[1] == pytest.approx(a.distribution[1], abs=0.02)


def test_cpu_decoding_on_random_weights_follows_the_same_greedy_path(untrained_model_dir: Path) -> None:
    """Random weights have no taught answer to fall back on: any change in the arithmetic shows as other tokens."""
    plain = TransformersJudge(str(untrained_model_dir), quantization="none", device="cpu", cpu_decode=False)
    fast = TransformersJudge(str(untrained_model_dir), quantization="none", device="cpu")
    for prompt in ("Is the sky green?", "A longer prompt " * 20):
        a = plain.generate(prompt, max_new_tokens=60)
        b = fast.generate(prompt, max_new_tokens=60)
        assert a.completion_tokens == b.completion_tokens == 60 and a.text == b.text


def test_a_batch_with_cpu_decoding_matches_one_at_a_time(trained_model_dir: Path, taught_prompt: str) -> None:
    judge = create_backend("transformers", model=str(trained_model_dir), quantization="int4", device="cpu")
    prompts = [taught_prompt, "Short one.", taught_prompt + " Extra words to pad the others."]
    alone = [judge.generate(p, scale=(0, 1), max_new_tokens=40) for p in prompts]
    batch = judge.generate_batch(prompts, scales=[(0, 1)] * 3, max_new_tokens=40)
    assert [g.text for g in batch] == [g.text for g in alone]


# -- prompt lookup decoding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("quantization", ["none", "nf4"])
def test_prompt_lookup_writes_the_tokens_of_plain_greedy_decoding(
    trained_model_dir: Path, taught_prompt: str, quantization: str
) -> None:
    plain = TransformersJudge(str(trained_model_dir), quantization=quantization, device="cpu", quantized_cache=False,
                              dtype="bfloat16")
    drafted = TransformersJudge(str(trained_model_dir), quantization=quantization, device="cpu",
                                quantized_cache=False, dtype="bfloat16", prompt_lookup=10)
    a = plain.generate(taught_prompt, scale=(0, 1), max_new_tokens=120)
    b = drafted.generate(taught_prompt, scale=(0, 1), max_new_tokens=120)
    assert a.text == b.text == WELL_FORMED and a.completion_tokens == b.completion_tokens
    assert b.settings["prompt_lookup_tokens"] == 10 and "prompt_lookup_tokens" not in a.settings
    assert a.distribution is not None and b.distribution is not None
    assert b.distribution[1] == pytest.approx(a.distribution[1], abs=1e-3)
    streamed = list(drafted.stream(taught_prompt, scale=(0, 1), max_new_tokens=120))
    assert "".join(streamed[:-1]) == streamed[-1].text == WELL_FORMED
    # transformers' prompt lookup mis-reads a cache holding part of the prompt, so the head is not reused with it.
    assert streamed[-1].settings["prefix_cached_tokens"] == 0


def test_prompt_lookup_on_random_weights_follows_the_same_greedy_path(untrained_model_dir: Path) -> None:
    plain = TransformersJudge(str(untrained_model_dir), quantization="none", device="cpu")
    drafted = TransformersJudge(str(untrained_model_dir), quantization="none", device="cpu", prompt_lookup=5)
    for prompt in ("Is the sky green? The sky is green.", "repeat repeat repeat " * 10):
        a = plain.generate(prompt, max_new_tokens=60)
        b = drafted.generate(prompt, max_new_tokens=60)
        assert a.completion_tokens == b.completion_tokens == 60 and a.text == b.text
    with pytest.raises(ModelLoadError, match="prompt_lookup"):
        TransformersJudge(str(untrained_model_dir), quantization="none", device="cpu", prompt_lookup=-1)


def test_a_prompt_too_long_for_a_float32_cache_decodes_on_the_models_dtype(
    trained_model_dir: Path, taught_prompt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    judge = TransformersJudge(str(trained_model_dir), quantization="none", device="cpu", dtype="bfloat16")
    monkeypatch.setattr(cpu_decode, "FLOAT32_MAX_TOKENS", 8)  # every prompt is "long" now
    seen: list[torch.dtype] = []
    real = cpu_decode.decode_attention

    def spy(module, query, key, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(key.dtype)
        return real(module, query, key, *args, **kwargs)

    from transformers import AttentionInterface

    AttentionInterface.register(cpu_decode.ATTENTION_NAME, spy)
    try:
        generation = judge.generate(taught_prompt, scale=(0, 1), max_new_tokens=120)
    finally:
        AttentionInterface.register(cpu_decode.ATTENTION_NAME, real)
    assert generation.text == WELL_FORMED
    assert seen and set(seen) == {torch.bfloat16}
