"""GLIDER's linear layers in 4-bit on a CPU, multiplied by PyTorch's own int4 weight-only kernel.

Why not bitsandbytes on a CPU: its nf4 routine depends on the CPU's flags (a fused kernel with AVX512-BF16,
an unpack-then-matmul without) and streams the 4-bit weights at a fraction of the memory bandwidth
(whole-model decode 3.2–4.3 tok/s, BENCHMARKS.md). PyTorch's `_weight_int4pack_mm_for_cpu` (the kernel
torchao's CPU int4 layout uses) streamed one 8192×3072 matrix of 4-bit weights at about the rate bf16
weights stream (0.64 ms per token, ../shared/notes/cpu-speed.md) on both CPUs we have.

A single-token step (decoding) is memory-bound, so it reads the 4-bit weights. A prompt is compute-bound:
one 400-token matmul took 116 ms through the int4 kernel and 46 ms on bf16 weights, so where memory allows
the bf16 weights the model was loaded with are kept for calls of `DENSE_FROM_ROWS` rows or more.

The format is the kernel's: asymmetric 4-bit groups of `GROUP_SIZE` weights along the input dimension,
each with a bf16 scale and zero point (w = (q - 8) · scale + zero, q in 0..15), min-max rounded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Weights per scale/zero pair. 64 cost 1.6 % more time per token than 128 on the 8192×3072 matrix (0.644 vs
# 0.634 ms), for half the rounding range; bitsandbytes' nf4 uses blocks of 64 too.
GROUP_SIZE = 64
# The kernel packs output features in blocks of 64 (a [N/64, K, 32]-byte layout).
_OUTPUT_BLOCK = 64
# Rows (tokens × batch rows) from which the bf16 weights are faster than the int4 kernel: per 8192×3072
# matrix, 8 rows took 2.32 ms (int4) vs 2.56 ms (bf16), 16 rows 4.64 vs 3.43 ms.
DENSE_FROM_ROWS = 12
# A 400-token prompt through one 8192×3072 matrix: 115.6 ms with the int4 kernel, 46.4 ms on bf16 weights.
PROMPT_SLOWDOWN = 115.6 / 46.4
_BYTES_PER_GIB = 1024**3


@dataclass(frozen=True)
class Int4Summary:
    """What `quantize_linear_layers` did: layers converted and left alone, bytes, whether bf16 copies stay."""

    converted: int
    skipped: tuple[str, ...]
    int4_bytes: int
    dense_bytes: int
    dense_kept: bool

    def describe(self) -> str:
        prompt = ("prompts on bf16 weights" if self.dense_kept
                  else "prompts through the int4 kernel too (bf16 weights not kept, for lack of memory: prompt "
                       f"matmuls measured {PROMPT_SLOWDOWN:.1f}x slower, so slow prompts)")
        return f"int4 (groups of {GROUP_SIZE}) via PyTorch's CPU int4 kernel; {prompt}"


def quantize_weight(weight: Any, group_size: int = GROUP_SIZE) -> tuple[Any, Any]:
    """(packed 4-bit weight, scales and zeros) of a [out, in] weight, in `_weight_int4pack_mm_for_cpu`'s format."""
    import torch

    out_features, in_features = weight.shape
    groups = weight.detach().to(torch.float32).reshape(out_features, in_features // group_size, group_size)
    low = groups.amin(dim=-1, keepdim=True)
    high = groups.amax(dim=-1, keepdim=True)
    scale = ((high - low) / 15).clamp(min=torch.finfo(torch.bfloat16).tiny)
    # Round with the bf16 scale and zero the kernel will use, so q and its dequantized value agree.
    scale = scale.to(torch.bfloat16).to(torch.float32)
    zero = (low + 8 * scale).to(torch.bfloat16).to(torch.float32)
    levels = ((groups - zero) / scale + 8).round_().clamp_(0, 15)
    packed = torch._convert_weight_to_int4pack_for_cpu(levels.reshape(out_features, in_features).to(torch.int32), 1)
    scales_and_zeros = torch.stack([scale.squeeze(-1), zero.squeeze(-1)], dim=-1).transpose(0, 1).contiguous()
    return packed, scales_and_zeros.to(torch.bfloat16)  # [in / group, out, 2]


def dequantize(packed: Any, scales_and_zeros: Any, group_size: int = GROUP_SIZE) -> Any:
    """The [out, in] float32 weight that `packed` and its scales stand for (for tests and error checks)."""
    import torch

    blocks, in_features, half = packed.shape[0] // _OUTPUT_BLOCK, packed.shape[1] * 2, _OUTPUT_BLOCK // 2
    layout = packed.reshape(blocks, in_features, half)
    levels = torch.cat([layout & 15, layout >> 4], dim=-1)  # [blocks, in, 64]: low nibbles, then high ones
    levels = levels.permute(0, 2, 1).reshape(blocks * _OUTPUT_BLOCK, in_features).to(torch.float32)
    scale, zero = (part.transpose(0, 1).to(torch.float32).repeat_interleave(group_size, dim=1)
                   for part in scales_and_zeros.unbind(-1))
    return (levels - 8) * scale + zero


def _int4_linear_class() -> type:
    import torch
    from torch import nn

    class Int4Linear(nn.Module):
        """A linear layer whose weight is 4-bit (`quantize_weight`); optionally keeps its bf16 weight for prompts."""

        def __init__(self, linear: nn.Linear, group_size: int, keep_dense: bool) -> None:
            super().__init__()
            self.in_features, self.out_features, self.group_size = linear.in_features, linear.out_features, group_size
            packed, scales_and_zeros = quantize_weight(linear.weight, group_size)
            self.packed: torch.Tensor
            self.scales_and_zeros: torch.Tensor
            self.register_buffer("packed", packed)
            self.register_buffer("scales_and_zeros", scales_and_zeros)
            self.dense = linear.weight if keep_dense else None
            self.bias = linear.bias

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows = x.reshape(-1, self.in_features)
            if self.dense is not None and rows.shape[0] >= DENSE_FROM_ROWS:
                out = nn.functional.linear(rows, self.dense, self.bias)
            else:
                out = torch._weight_int4pack_mm_for_cpu(rows.to(torch.bfloat16).contiguous(), self.packed,
                                                        self.group_size, self.scales_and_zeros).to(x.dtype)
                if self.bias is not None:
                    out = out + self.bias
            return out.reshape(*x.shape[:-1], self.out_features)

        def extra_repr(self) -> str:
            return (f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}, "
                    f"dense_for_prompts={self.dense is not None}")

    return Int4Linear


def convertible(linear: Any, group_size: int = GROUP_SIZE) -> bool:
    """Whether the kernel takes this layer's shape: inputs in whole groups, outputs in whole blocks of 64."""
    return linear.in_features % group_size == 0 and linear.out_features % _OUTPUT_BLOCK == 0


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def quantize_linear_layers(
    model: Any, *, keep_dense: bool | None = None, group_size: int = GROUP_SIZE,
    headroom_bytes: int = 2 * _BYTES_PER_GIB,
) -> Int4Summary:
    """Replace every nn.Linear of the decoder layers (not the lm_head) with an Int4Linear, in place.

    The lm_head stays bf16, as bitsandbytes leaves it: its logits are the score probabilities the app shows.
    `keep_dense` None keeps the bf16 weights for prompts when, once quantized, the machine still has
    `headroom_bytes` available (they are already in memory: dropping them frees ~7 GB for GLIDER).
    """
    import torch
    from torch import nn

    int4_linear = _int4_linear_class()
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and module is not head]
    skipped = tuple(name for name, module in targets if not convertible(module, group_size))
    converted: list[tuple[str, Any]] = []
    with torch.no_grad():
        for name, module in targets:
            if name in skipped:
                continue
            replacement = int4_linear(module, group_size, keep_dense=True)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, replacement)
            converted.append((name, replacement))
    int4_bytes = sum(m.packed.nbytes + m.scales_and_zeros.nbytes for _, m in converted)
    dense_bytes = sum(m.dense.nbytes for _, m in converted)
    if keep_dense is None:
        available = available_memory_bytes()
        keep_dense = available is None or available >= headroom_bytes
        if not keep_dense:
            log.warning("Only %.1f GiB of memory left after quantizing: the bf16 weights (%.1f GiB) are dropped, "
                        "so prompts run through the int4 kernel (slower)", (available or 0) / _BYTES_PER_GIB,
                        dense_bytes / _BYTES_PER_GIB)
    if not keep_dense:
        for _, module in converted:
            module.dense = None
    if skipped:
        log.info("int4: %d linear layers left in bf16 (shape not in whole groups of %d): %s",
                 len(skipped), group_size, ", ".join(skipped))
    return Int4Summary(len(converted), skipped, int4_bytes, dense_bytes, keep_dense)
