"""One decode step of Qwen3-VL's language model, written out for a single new token.

transformers' generic forward spends more time per step on plumbing than on the matmuls on this
CPU (~2.7 ms per layer: causal-mask construction, rotary tables for three position axes, output
capture, a KV cache that grows by concatenation). For one token none of that is needed: the mask
is "everything before", the three M-RoPE axes share one position, and the cache can grow in place.
The step uses the model's own modules and weights (float or int8), so it adds no memory; the
prefill still runs through transformers, where the image, the deepstack features and the mask
matter. ``tests/core/test_decode_step.py`` checks it against transformers' forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from core.joint_projection import joint_of

_GROW_BY = 256  # cache slots added at a time: one copy every 256 tokens instead of every token


Projections = Callable[[torch.Tensor], Sequence[torch.Tensor]]


def _projections(*modules: nn.Module) -> Projections:
    """Each module's output for one input, in one matmul when they were joined (in this order)."""
    joint = joint_of(modules[0])
    in_order = all(
        joint_of(module) is joint and getattr(module, "index", -1) == index
        for index, module in enumerate(modules)
    )
    if joint is not None and in_order and len(modules) == len(joint.widths):
        return joint
    return lambda hidden: [module(hidden) for module in modules]


@dataclass(frozen=True)
class _Layer:
    input_norm: torch.Tensor
    post_norm: torch.Tensor
    q_norm: torch.Tensor
    k_norm: torch.Tensor
    qkv: Projections
    o: nn.Module
    gate_up: Projections
    down: nn.Module


def _rms_norm(hidden: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # The same operations in the same order as Qwen3VLTextRMSNorm, so results match it exactly.
    variance = hidden.pow(2).mean(-1, keepdim=True)
    return weight * (hidden * torch.rsqrt(variance + eps))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class GrowingCache:
    """Lets a DynamicCache take one token per layer without re-concatenating the whole cache.

    Each layer's keys and values become views of a buffer with spare slots; ``compact`` turns
    them back into tensors of their own size (for the prefix cache's memory accounting).
    """

    def __init__(self, cache: DynamicCache) -> None:
        self.cache = cache
        self._buffers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def append(self, index: int, key: torch.Tensor, value: torch.Tensor) -> None:
        """Store one token's key and value (heads, head_dim) for layer ``index``."""
        layer = self.cache.layers[index]
        length = layer.keys.shape[-2]
        if index >= len(self._buffers) or self._buffers[index][0].shape[-2] == length:
            self._grow(index, length)
        keys, values = self._buffers[index]
        keys[0, :, length] = key
        values[0, :, length] = value
        layer.keys = keys[:, :, : length + 1]
        layer.values = values[:, :, : length + 1]

    def layer(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``index``'s keys and values as (heads, length, head_dim)."""
        layer = self.cache.layers[index]
        return layer.keys[0], layer.values[0]

    def _grow(self, index: int, length: int) -> None:
        layer = self.cache.layers[index]
        batch, heads, _, dim = layer.keys.shape
        keys = layer.keys.new_empty(batch, heads, length + _GROW_BY, dim)
        values = layer.values.new_empty(batch, heads, length + _GROW_BY, dim)
        keys[:, :, :length] = layer.keys
        values[:, :, :length] = layer.values
        if index < len(self._buffers):
            self._buffers[index] = (keys, values)
        else:
            self._buffers.append((keys, values))

    def compact(self) -> None:
        for layer, _ in zip(self.cache.layers, self._buffers, strict=False):
            layer.keys = layer.keys.clone()
            layer.values = layer.values.clone()
        self._buffers.clear()


class DecodeStep:
    """Next-token logits for one token at one position, from and into a DynamicCache."""

    @staticmethod
    def fits(model: PreTrainedModel) -> bool:
        """Whether ``model`` is the dense float32 Qwen3-VL text stack this step is written for."""
        text = getattr(getattr(model, "model", None), "language_model", None)
        if text is None or getattr(text.config, "model_type", "") != "qwen3_vl_text":
            return False  # e.g. the mixture-of-experts variant: left to transformers
        return text.norm.weight.dtype == torch.float32

    def __init__(self, model: PreTrainedModel) -> None:
        text = model.model.language_model
        config = text.config
        self.eps = config.rms_norm_eps
        self.head_dim = getattr(config, "head_dim", None) or (
            config.hidden_size // config.num_attention_heads
        )
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.scale = self.head_dim**-0.5
        self.embed = text.embed_tokens
        self.final_norm = text.norm.weight
        self.head = model.lm_head
        rotary = text.rotary_emb
        self.inv_freq = rotary.inv_freq.float()
        self.rope_scaling = float(rotary.attention_scaling)
        self.layers = [
            _Layer(
                input_norm=layer.input_layernorm.weight,
                post_norm=layer.post_attention_layernorm.weight,
                q_norm=layer.self_attn.q_norm.weight,
                k_norm=layer.self_attn.k_norm.weight,
                qkv=_projections(
                    layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj
                ),
                o=layer.self_attn.o_proj,
                gate_up=_projections(layer.mlp.gate_proj, layer.mlp.up_proj),
                down=layer.mlp.down_proj,
            )
            for layer in text.layers
        ]
        self._act = text.layers[0].mlp.act_fn

    def _rope(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        # After the prompt every M-RoPE axis holds the same position, so the three interleaved
        # sections collapse to the ordinary 1-D rotary table at that position.
        freqs = torch.tensor([float(position)]) * self.inv_freq
        angles = torch.cat((freqs, freqs))
        return angles.cos() * self.rope_scaling, angles.sin() * self.rope_scaling

    def _attend(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        # One query row: plain batched matmuls per key/value head (each shared by a group of
        # query heads) beat scaled_dot_product_attention's flash kernel ~10× at this size.
        groups = q.view(self.kv_heads, self.heads // self.kv_heads, self.head_dim)
        scores = torch.matmul(groups, keys.transpose(-1, -2)).mul_(self.scale)
        weights = torch.softmax(scores, dim=-1)
        return torch.matmul(weights, values).view(1, self.heads * self.head_dim)

    def __call__(self, token: int, position: int, kv: GrowingCache) -> torch.Tensor:
        eps, dim = self.eps, self.head_dim
        hidden = self.embed(torch.tensor([token]))  # (1, hidden)
        cos, sin = self._rope(position)
        for index, layer in enumerate(self.layers):
            normed = _rms_norm(hidden, layer.input_norm, eps)
            q, k, v = layer.qkv(normed)
            q = _rms_norm(q.reshape(self.heads, dim), layer.q_norm, eps)
            k = _rms_norm(k.reshape(self.kv_heads, dim), layer.k_norm, eps)
            v = v.reshape(self.kv_heads, dim)
            kv.append(index, _rotate(k, cos, sin), v)
            keys, values = kv.layer(index)
            attended = self._attend(_rotate(q, cos, sin), keys, values)
            hidden = hidden + layer.o(attended)
            normed = _rms_norm(hidden, layer.post_norm, eps)
            gate, up = layer.gate_up(normed)
            hidden = hidden + layer.down(self._act(gate) * up)
        return self.head(_rms_norm(hidden, self.final_norm, eps))[0]
