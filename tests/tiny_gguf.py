"""Write a tiny Phi-3 judge saved by tests/tiny_model.py as a GGUF file, for the llamacpp back-end's tests.

llama.cpp's own converter needs sentencepiece's tokenizer.model, which the Phi-3 fixture does not ship,
so this is a small writer built on the `gguf` package: Phi-3 hyper-parameters, the weights under
llama.cpp's tensor names, and the tokenizer.json vocabulary as an SPM-style ("llama") vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Hugging Face Phi-3 weight name (after 'model.') → llama.cpp tensor name; N is the layer index.
TENSOR_NAMES = {
    "embed_tokens.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "layers.N.input_layernorm.weight": "blk.N.attn_norm.weight",
    "layers.N.self_attn.qkv_proj.weight": "blk.N.attn_qkv.weight",
    "layers.N.self_attn.o_proj.weight": "blk.N.attn_output.weight",
    "layers.N.post_attention_layernorm.weight": "blk.N.ffn_norm.weight",
    # Phi-3 fuses gate and up projections (gate first); llama.cpp's Phi-3 graph expects the same layout.
    "layers.N.mlp.gate_up_proj.weight": "blk.N.ffn_up.weight",
    "layers.N.mlp.down_proj.weight": "blk.N.ffn_down.weight",
}
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}  # llama.cpp's LLAMA_FTYPE_* numbers, stored as general.file_type


def convert(model_dir: Path, out: Path, *, file_type: str = "f32", name: str = "glider-tiny-test") -> Path:
    """Write `model_dir` (a saved tiny Phi-3 with an SPM-style tokenizer.json) to the GGUF file `out`.

    `file_type` is f32 (what the tests compare against transformers), f16 or q8_0 (2-D weights only;
    norms stay f32, as llama.cpp's converter does); `quantize` makes other kinds from these. The name
    deliberately does not contain 'phi3': the back-end must tokenize like transformers without llama.cpp's
    name-based Phi-3 special cases.
    """
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    writer = gguf.GGUFWriter(out, "phi3")
    writer.add_name(name)
    _add_hyperparameters(writer, config, FILE_TYPES[file_type])
    _add_tokenizer(writer, model_dir, config["vocab_size"])

    weights = load_file(str(model_dir / "model.safetensors"))
    for hf_name, array in sorted(weights.items()):
        tensor = np.ascontiguousarray(array, dtype=np.float32)
        name_out = _tensor_name(hf_name)
        if tensor.ndim == 2 and file_type == "f16":
            writer.add_tensor(name_out, tensor.astype(np.float16))
        elif tensor.ndim == 2 and file_type == "q8_0":
            kind = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name_out, gguf.quants.quantize(tensor, kind), raw_dtype=kind)
        else:
            writer.add_tensor(name_out, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def quantize(source: Path, out: Path, kind: str = "Q4_K_M") -> Path:
    """Quantize the f32/f16 GGUF `source` to `kind` (Q4_K_M, Q8_0, ...) with llama.cpp's own quantizer.

    Needs llama-cpp-python. Tensors whose rows are not a multiple of the kind's block (256 for K-quants,
    so every tensor of the 64-wide tiny judge) get llama.cpp's fallback type, as in any quantized GGUF.
    """
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
    if code != 0:
        raise RuntimeError(f"llama_model_quantize({source.name} → {kind}) returned {code}")
    return out


def _tensor_name(hf_name: str) -> str:
    if hf_name == "lm_head.weight":
        return "output.weight"
    parts = hf_name.removeprefix("model.").split(".")
    if parts[0] == "layers":
        layer, key = parts[1], ".".join(["layers", "N", *parts[2:]])
        return TENSOR_NAMES[key].replace("N", layer, 1)
    return TENSOR_NAMES[".".join(parts)]


def _add_hyperparameters(writer: Any, config: dict[str, Any], file_type: int) -> None:
    rope = config.get("rope_parameters") or {}
    heads = config["num_attention_heads"]
    head_dim = config["hidden_size"] // heads
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_rope_scaling_orig_ctx_len(config.get("original_max_position_embeddings", 4096))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_dimension_count(int(rope.get("partial_rotary_factor", 1.0) * head_dim))
    writer.add_rope_freq_base(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
    writer.add_sliding_window(0)  # 0 tells llama.cpp this is Phi-3, not Phi-4
    writer.add_file_type(file_type)


def _add_tokenizer(writer: Any, model_dir: Path, vocab_size: int) -> None:
    """The tokenizer.json BPE vocabulary as llama.cpp's SPM vocabulary (pieces, scores, token types).

    llama.cpp's SPM tokenizer merges the adjacent pair whose joined piece has the highest score, where
    tokenizers' BPE applies the merge of lowest rank; scoring each piece by minus the rank of the first
    merge that produces it makes the two agree.
    """
    import gguf

    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = spec["model"]
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        raise ValueError("tiny_gguf converts SPM-style tokenizers (BPE with byte fallback, like Phi-3's) only")
    settings = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    template_file = model_dir / "chat_template.jinja"
    template = template_file.read_text(encoding="utf-8") if template_file.is_file() else settings["chat_template"]

    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    scores = [-1000.0] * vocab_size
    types = [gguf.TokenType.UNUSED] * vocab_size
    for piece, token_id in model["vocab"].items():
        tokens[token_id] = piece
        # Single characters are never a merge's result; a longer piece no merge produces stays unreachable.
        scores[token_id] = 0.0 if len(piece) == 1 else -1e9
        is_byte = len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">")
        types[token_id] = gguf.TokenType.BYTE if is_byte else gguf.TokenType.NORMAL
    for rank, merge in enumerate(model["merges"]):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        token_id = model["vocab"].get(left + right)
        if token_id is not None and scores[token_id] == -1e9:
            scores[token_id] = -float(rank + 1)
    for added in spec["added_tokens"]:
        token_id = added["id"]
        tokens[token_id] = added["content"]
        scores[token_id] = -1000.0
        if added["content"] == model.get("unk_token"):
            types[token_id] = gguf.TokenType.UNKNOWN
        else:
            # Phi-3 marks </s> non-special, but it is a control token in its sentencepiece model.
            types[token_id] = gguf.TokenType.CONTROL if added["special"] or added["content"] == "</s>" else (
                gguf.TokenType.USER_DEFINED
            )

    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    ids = {piece: token_id for piece, token_id in model["vocab"].items()}
    ids.update({added["content"]: added["id"] for added in spec["added_tokens"]})
    writer.add_bos_token_id(ids[settings["bos_token"]])
    writer.add_eos_token_id(ids[settings["eos_token"]])
    writer.add_unk_token_id(ids[settings["unk_token"]])
    writer.add_pad_token_id(ids[settings.get("pad_token") or settings["eos_token"]])
    writer.add_add_bos_token(bool(settings.get("add_bos_token", False)))
    writer.add_add_eos_token(bool(settings.get("add_eos_token", False)))
    writer.add_add_space_prefix(True)  # tokenizer.json prepends '▁' to every segment (its Prepend normalizer)
    writer.add_chat_template(template)
