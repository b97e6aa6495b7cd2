"""Two costs of a CPU decoding step that grow with the context, removed: attention and the key/value copy.

Measured on GLIDER's shape (2 cores, AMD EPYC, bf16 weights; BENCHMARKS.md has the whole-grade effect): at
900 tokens of context a step took 230 ms, against 135 ms at 64 tokens.
- PyTorch's fused CPU attention for one query row over bf16 keys took 2.3 ms per layer in the model
  (4.9 ms alone); on float32 keys and values the same kernel took 0.6 ms. So on a CPU the cache keeps keys
  and values in float32 (the bf16 values converted exactly; twice the memory: ~0.8 MB per token for
  GLIDER, so only up to FLOAT32_MAX_TOKENS) and `decode_attention` runs SDPA in float32, which also rounds
  less than bf16 attention.
- transformers' DynamicCache appends each new token with torch.cat, which allocates and copies every
  layer's keys and values at every step (35 ms per step at 900 tokens). The growing layers of `growing_cache` write into
  buffers that grow by doubling, so a step copies one token.
The arithmetic is the same attention (greedy output unchanged; tests/test_cpu_decode.py).
"""

from __future__ import annotations

from typing import Any

ATTENTION_NAME = "glider_cpu"
_MIN_CAPACITY = 256
# Float32 keys and values take 0.8 MB per token for GLIDER: 3.2 GB at this length, 6.4 GB at GLIDER's 8,192.
FLOAT32_MAX_TOKENS = 4096


def decode_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
    scaling: float | None = None, **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function contract: SDPA, in float32 when the cache holds float32 keys and values."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if key.dtype != torch.float32 or query.dtype == torch.float32:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        attention_mask = attention_mask.float()
    output, weights = sdpa_attention_forward(module, query.float(), key, value.float(), attention_mask,
                                             dropout=dropout, scaling=scaling, **kwargs)
    return output.to(query.dtype), weights


def register_attention() -> str:
    """Make `decode_attention` (and SDPA's mask) available to transformers under ATTENTION_NAME; returns it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, decode_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION_NAME, sdpa_mask)
    return ATTENTION_NAME


def _growing_layer_class() -> type:
    import torch
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A DynamicLayer whose keys and values are views of buffers with spare room along the sequence."""

        def __init__(self, capacity: int = 0, dtype: torch.dtype | None = torch.float32) -> None:
            super().__init__()
            self.capacity_hint = capacity  # tokens
            self.dtype = dtype  # of the buffers: float32 (the attention's input type), or None for the model's
            self._key_buffer: torch.Tensor | None = None
            self._value_buffer: torch.Tensor | None = None

        def _owns_current_states(self) -> bool:
            # crop() and batch_select_indices() replace self.keys; a view at the buffer's start is still ours.
            return (self._key_buffer is not None and self.keys is not None and self.keys.numel() > 0
                    and self.keys.dtype == self._key_buffer.dtype
                    and self.keys.data_ptr() == self._key_buffer.data_ptr()
                    and self.keys.shape[:2] == self._key_buffer.shape[:2])

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            length = self.get_seq_length()
            needed = length + key_states.shape[-2]
            if not self._owns_current_states() or needed > self._key_buffer.shape[-2]:  # type: ignore[union-attr]
                capacity = max(needed, 2 * length, self.capacity_hint, _MIN_CAPACITY)
                self._key_buffer = self._grow(self.keys, key_states, length, capacity)
                self._value_buffer = self._grow(self.values, value_states, length, capacity)
            assert self._key_buffer is not None and self._value_buffer is not None
            self._key_buffer[:, :, length:needed].copy_(key_states)
            self._value_buffer[:, :, length:needed].copy_(value_states)
            self.keys = self._key_buffer[:, :, :needed]
            self.values = self._value_buffer[:, :, :needed]
            return self.keys, self.values

        def _grow(self, current: torch.Tensor | None, new: torch.Tensor, length: int, capacity: int) -> torch.Tensor:
            buffer = new.new_empty((*new.shape[:2], capacity, new.shape[-1]), dtype=self.dtype or new.dtype)
            if length and current is not None:
                buffer[:, :, :length].copy_(current[:, :, :length])
            return buffer

        def reset(self) -> None:
            self._key_buffer = self._value_buffer = None
            super().reset()

    return GrowingLayer


def growing_cache(config: Any, capacity: int = 0, prefill: Any = None) -> Any:
    """A DynamicCache of GrowingLayers for `config` (room for `capacity` tokens), holding `prefill`'s states if given.

    Float32 up to FLOAT32_MAX_TOKENS of capacity; a longer prompt keeps the model's own dtype (half the memory,
    the slower bf16 attention). Only plain full-attention layers are replaced; a model with sliding-window or
    other special layers keeps transformers' own classes for those.
    """
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    growing = _growing_layer_class()
    dtype = torch.float32 if capacity <= FLOAT32_MAX_TOKENS else None
    cache = DynamicCache(config=config)
    cache.layers = [growing(capacity, dtype) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    if prefill is not None:
        for layer, source in zip(cache.layers, prefill.layers, strict=True):
            if source.is_initialized and source.get_seq_length() > 0:
                layer.update(source.keys, source.values)  # type: ignore[union-attr]  # full-attention layers only
    return cache
