"""Build tiny Phi-3-architecture judges on disk, so tests load them through the user's code path.

No weights are downloaded: the model is created from a config, optionally trained for a few seconds
to reproduce one well-formed GLIDER answer, and saved with `save_pretrained` next to a tokenizer.
"""

from __future__ import annotations

from pathlib import Path

PHI35_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "phi35-tokenizer"

# Phi-3's chat template for the single-user-turn prompts GLIDER uses.
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' + '\n' }}{% else %}{{ eos_token }}{% endif %}"
)
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>"]


def has_real_tokenizer() -> bool:
    """The real Phi-3 tokenizer fixture is present (CI has it; it is not copied into the repo)."""
    return (PHI35_TOKENIZER / "tokenizer.json").is_file()


def build_tokenizer(corpus: list[str]):  # noqa: ANN201 - returns a transformers tokenizer
    """The real Phi-3 tokenizer when available, else a small BPE tokenizer with the same special tokens."""
    from transformers import PreTrainedTokenizerFast

    if has_real_tokenizer():
        return PreTrainedTokenizerFast.from_pretrained(str(PHI35_TOKENIZER))
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus + [str(d) for d in range(10)], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="<|endoftext|>",
        pad_token="<|endoftext|>", additional_special_tokens=SPECIAL_TOKENS[4:],
    )
    tokenizer.chat_template = PHI3_CHAT_TEMPLATE
    return tokenizer


# Logits by which every taught token must beat the next best one (see teach).
MARGIN = 4.0


def build_model(tokenizer, max_positions: int = 16384, seed: int = 0):  # noqa: ANN001, ANN201
    """A 2-layer, 64-wide Phi-3 with GLIDER's vocabulary size (or the fallback tokenizer's)."""
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(seed)
    config = Phi3Config(
        vocab_size=max(32064, len(tokenizer)),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=False,
    )
    return Phi3ForCausalLM(config)


def teach(model, tokenizer, prompt_text: str, answer: str, steps: int = 600, lr: float = 1e-2,  # noqa: ANN001
          margin: float = MARGIN) -> float:
    """Overfit the model on one chat-formatted prompt + answer; returns the final loss.

    Raises AssertionError when `steps` do not suffice.
    """
    import torch

    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt_text}], tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(chat, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.convert_tokens_to_ids("<|end|>")]
    input_ids = torch.tensor([prompt_ids + answer_ids])
    labels = input_ids.clone()
    labels[0, : len(prompt_ids)] = -100  # learn the answer only
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss_value = float("inf")
    answer_slice = slice(len(prompt_ids) - 1, input_ids.shape[1] - 1)  # logits that predict the answer
    targets = input_ids[0, answer_slice.start + 1 :]
    for _ in range(steps):
        output = model(input_ids=input_ids, labels=labels)
        loss_value = float(output.loss.detach())
        # Every answer token must win its teacher-forced argmax by `margin` logits, not just win: a bare
        # win flips under 4-bit rounding or another CPU's float order (a CI machine once decoded garbage).
        logits = output.logits[0, answer_slice].detach()
        correct = logits.gather(1, targets[:, None])[:, 0]
        rivals = logits.scatter(1, targets[:, None], float("-inf")).max(-1).values
        if loss_value < 0.05 and float((correct - rivals).min()) >= margin:
            break
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
    else:
        raise AssertionError(f"the tiny judge did not learn its answer by {margin} logits (loss {loss_value:.3f})")
    model.eval()
    return loss_value


def save(model, tokenizer, directory: Path) -> Path:  # noqa: ANN001
    """save_pretrained both, as a user's local model directory looks."""
    directory.mkdir(parents=True, exist_ok=True)
    # GLIDER (Phi-3.5-mini) publishes these three stop ids in its generation_config.json; serving
    # engines that read that file (transformers serve, vLLM) stop where GLIDER does.
    stops = [tokenizer.convert_tokens_to_ids(t) for t in ("<|end|>", "<|assistant|>", "<|endoftext|>")]
    model.generation_config.eos_token_id = stops
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
