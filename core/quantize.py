"""Int8 weights for CPU inference: fbgemm dynamic-int8 Linear layers and an int8 embedding table.

Measured on the 2-core AVX2 target (docs/speed.md): torch.ao's fbgemm dynamic int8 kernel is the
fastest CPU matmul there for both prefill and one-token decode; torchao's CPU paths and torch's int4
kernel are slower on that hardware, so this module uses the former.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
from torch.ao.quantization import per_channel_dynamic_qconfig


def _int8_block(weight: torch.Tensor) -> DynamicInt8Linear:
    """An fbgemm int8 matmul for fp32 ``weight`` (per-output-channel weight scales, no bias)."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    linear.weight = nn.Parameter(weight, requires_grad=False)
    linear.qconfig = per_channel_dynamic_qconfig
    with warnings.catch_warnings():
        # torch.ao warns that it is deprecated in favour of torchao; see the module docstring.
        warnings.simplefilter("ignore")
        return DynamicInt8Linear.from_float(linear)


# Activations in [-1, 1] as fbgemm's 7-bit ("reduce_range") unsigned int8 would quantize that
# range itself: scale 2/127, zero point nearbyint(63.5) = 64.
_UNIT_SCALE = 2.0 / 127.0
_UNIT_ZERO_POINT = 64
_int8_matmul = torch.ops.quantized.linear_with_input_q_dq_qweight_dq_output_fp32


class RowSource(Protocol):
    """A weight matrix whose rows can be read a block at a time (a tensor, or one on disk)."""

    @property
    def shape(self) -> Sequence[int]: ...

    def __getitem__(self, rows: slice) -> torch.Tensor: ...


class Int8Linear(nn.Module):
    """A Linear layer as fbgemm int8 matmuls, each token's activations on their own int8 scale.

    fbgemm's dynamic kernel would quantize a whole call's activations with one scale (from their
    min and max), so a token's result would depend on which other tokens share the call, and a
    follow-up run from a cached prefix would differ from a full run. Instead each token is divided
    by its largest magnitude and handed to fbgemm with the fixed activation range [-1, 1]: each
    token's output depends on that token alone (per-token scales are also more accurate), and no
    min/max pass over the activations is needed. Very wide layers (the 151936-row output head) are
    quantized in blocks of rows so that no full fp32 copy is ever held.
    """

    def __init__(
        self, weight: RowSource, bias: torch.Tensor | None, block_rows: int = 16384
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape[0], weight.shape[1]
        self.blocks = nn.ModuleList(
            _int8_block(weight[start : start + block_rows].float())
            for start in range(0, self.out_features, block_rows)
        )
        self.bias = None if bias is None else nn.Parameter(bias.float(), requires_grad=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        rows = hidden.reshape(-1, self.in_features)
        peak = rows.abs().amax(dim=1, keepdim=True).clamp_(min=torch.finfo(rows.dtype).tiny)
        scaled = rows / peak
        outs = [
            _int8_matmul(scaled, _UNIT_SCALE, _UNIT_ZERO_POINT, block._packed_params._packed_params)
            for block in self.blocks
        ]
        out = (outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)).mul_(peak)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*hidden.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"{self.in_features} → {self.out_features}, int8 in {len(self.blocks)} block(s)"


def quantize_weight(weight: RowSource, bias: torch.Tensor | None) -> nn.Module:
    """An int8 Linear for these float weights (any float dtype)."""
    return Int8Linear(weight, bias)


class Int8Embedding(nn.Module):
    """An embedding table stored as int8 rows with one fp32 scale per row (a quarter of fp32)."""

    def __init__(self, weight: RowSource, padding_idx: int | None = None) -> None:
        super().__init__()
        rows = []
        scales = []
        # Block by block, so a 151936×2048 table is never held in float all at once.
        for start in range(0, weight.shape[0], 8192):
            chunk = weight[start : start + 8192].float()
            scale = chunk.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
            rows.append(torch.round(chunk / scale).to(torch.int8))
            scales.append(scale)
        self.register_buffer("weight_int8", torch.cat(rows))
        self.register_buffer("scale", torch.cat(scales))
        self.padding_idx = padding_idx
        self.num_embeddings, self.embedding_dim = self.weight_int8.shape

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.weight_int8[input_ids].float() * self.scale[input_ids]

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 rows"


def replace_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def quantize_model_in_place(model: nn.Module, *, join: bool = True) -> nn.Module:
    """Swap every Linear (vision tower, language model, output head) and the input embedding.

    Each layer is converted and its float weights dropped before the next, so the extra memory is
    one layer's fp32 copy; the tied output head gets its own int8 copy because it is ~15 % of the
    weights every decode step reads. With ``join``, q/k/v and gate/up become one matmul each.
    """
    from core.joint_projection import join_linears  # imports this module

    get_embeddings = getattr(model, "get_input_embeddings", None)
    embeddings = get_embeddings() if get_embeddings is not None else None
    for name, module in list(model.named_modules()):
        if join:
            join_linears(module, lambda _, linear: linear.weight.detach())
        # A Linear already replaced by a joined projection above is still in the listing.
        if isinstance(module, nn.Linear) and model.get_submodule(name) is module:
            bias = None if module.bias is None else module.bias.detach()
            replace_module(model, name, quantize_weight(module.weight.detach(), bias))
        elif module is embeddings and isinstance(module, nn.Embedding):
            replace_module(model, name, Int8Embedding(module.weight.detach(), module.padding_idx))
    return model


def int8_module_count(model: nn.Module) -> int:
    return sum(isinstance(m, Int8Linear | Int8Embedding) for m in model.modules())
