"""bf16 copies of an nf4 model's weights for prompts, on a CPU with the memory for them.

A prompt is compute-bound: its matmuls ran 1.4x faster on bf16 weights (int4's prompts, 50 tok/s) than through
bitsandbytes' 4-bit CPU kernel (36 tok/s, BENCHMARKS.md, AMD EPYC). A decoding step is memory-bound and keeps
the 4-bit kernel. The copies are the nf4 weights dequantized (not the original bf16 ones), so a prompt and the
written tokens use the same weights. They take 2 bytes per weight (~7.2 GB for GLIDER), so they are made only
when that leaves `headroom_bytes` of memory available.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.judge.int4_cpu import DENSE_FROM_ROWS, available_memory_bytes

log = logging.getLogger(__name__)
_GIB = 1024**3


@dataclass(frozen=True)
class PromptWeights:
    """Whether bf16 prompt copies were made for the 4-bit layers, how many and how large, and why not."""

    layers: int
    dense_bytes: int
    kept: bool
    reason: str

    def describe(self) -> str:
        if self.kept:
            return "prompts on bf16 copies of the nf4 weights"
        return f"prompts through the 4-bit kernel ({self.reason})"


def _wrapper_class() -> type:
    import torch
    from torch import nn

    class DensePrompts(nn.Module):
        """A 4-bit linear layer plus the bf16 weight it stands for, used for calls of DENSE_FROM_ROWS rows or more."""

        def __init__(self, quantized: nn.Module, dense: torch.Tensor) -> None:
            super().__init__()
            self.quantized = quantized
            self.dense: torch.Tensor
            self.register_buffer("dense", dense)
            bias = getattr(quantized, "bias", None)
            self.dense_bias: torch.Tensor | None = None if bias is None else bias.detach().to(dense.dtype)
            self.in_features, self.out_features = dense.shape[1], dense.shape[0]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.numel() // self.in_features >= DENSE_FROM_ROWS:
                return nn.functional.linear(x.to(self.dense.dtype), self.dense, self.dense_bias).to(x.dtype)
            return self.quantized(x)

    return DensePrompts


def add_prompt_weights(model: Any, *, keep: bool | None = None, headroom_bytes: int = 2 * _GIB) -> PromptWeights:
    """Wrap every bitsandbytes 4-bit linear layer of `model` with a bf16 copy for prompts (in place).

    `keep` True always, False never, None when the copies leave `headroom_bytes` available.
    """
    import torch
    from bitsandbytes.functional import dequantize_4bit
    from bitsandbytes.nn import Linear4bit

    targets = [(name, module) for name, module in model.named_modules() if isinstance(module, Linear4bit)]
    dense_bytes = sum(module.out_features * module.in_features * 2 for _, module in targets)
    if not targets:
        return PromptWeights(0, 0, False, "no 4-bit layers")
    if keep is False:
        return PromptWeights(len(targets), dense_bytes, False, "turned off")
    if keep is None:
        available = available_memory_bytes()
        if available is not None and available - dense_bytes < headroom_bytes:
            reason = (f"bf16 copies need {dense_bytes / _GIB:.1f} GiB, {available / _GIB:.1f} GiB available; "
                      "with them prompts ran 1.4x faster")
            log.info("nf4: no bf16 prompt weights (%s)", reason)
            return PromptWeights(len(targets), dense_bytes, False, reason)
    wrapper = _wrapper_class()
    with torch.no_grad():
        for name, module in targets:
            packed = module.weight
            weight = dequantize_4bit(packed.data, packed.quant_state).to(torch.bfloat16)  # type: ignore[attr-defined]
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, wrapper(module, weight))
    return PromptWeights(len(targets), dense_bytes, True, "")
