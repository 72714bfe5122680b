"""Linear layers that read the same input, run as one int8 matmul.

In decoding every int8 matmul call has a fixed cost of ~0.2 ms on this CPU (activation packing,
waking the second thread) on top of reading its weights, and a Qwen3 decoder layer makes seven:
q, k and v read the same normed input, as do gate and up. Joining them makes it four calls a layer
(~17 ms a token less over 28 layers) with bit-identical results, since weights keep their
per-output-channel scales and each token's activations their own scale. No weight is held twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from core.quantize import Int8Linear


def _joined_weights(parts: Sequence[Int8Linear]) -> torch.Tensor:
    """The parts' int8 weights stacked by output channel, scales and zero points kept per row."""
    values, scales, zero_points = [], [], []
    for part in parts:
        for block in part.blocks:
            weight, _ = block._packed_params._weight_bias()
            values.append(weight.int_repr())
            scales.append(weight.q_per_channel_scales())
            zero_points.append(weight.q_per_channel_zero_points())
    return torch._make_per_channel_quantized_tensor(
        torch.cat(values), torch.cat(scales), torch.cat(zero_points), 0
    )


def _version(tensor: torch.Tensor) -> int:
    # Counts in-place changes; tensors made under inference_mode keep no count (-1), and there
    # identity alone decides, which is safe because transformers never changes a layer's
    # normed input in place between its projections.
    return -1 if tensor.is_inference() else tensor._version


class JointProjection(nn.Module):
    """q/k/v (or gate/up) as one int8 matmul whose output is split back into the parts."""

    def __init__(self, parts: Sequence[Int8Linear]) -> None:
        super().__init__()
        if any(part.bias is not None for part in parts):
            raise ValueError("joined projections carry no bias")
        self.widths = [part.out_features for part in parts]
        self.linear = Int8Linear.from_quantized(_joined_weights(parts))
        self._pending: tuple[torch.Tensor, int, tuple[torch.Tensor, ...], set[int]] | None = None

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(hidden).split(self.widths, dim=-1)

    def part(self, index: int) -> ProjectionPart:
        return ProjectionPart(self, index)

    def take(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        """Part ``index`` of the joint output for ``hidden``, computing it once for all parts."""
        pending = self._pending
        version = _version(hidden)
        if (
            pending is None
            or pending[0] is not hidden
            or pending[1] != version
            or index in pending[3]
        ):
            pending = (hidden, version, self(hidden), set())
        taken = pending[3]
        taken.add(index)
        # Dropped once every part has its share, so no activations outlive the layer's call.
        self._pending = None if len(taken) == len(self.widths) else pending
        return pending[2][index]


class ProjectionPart(nn.Module):
    """One joined layer where transformers calls it (q_proj, k_proj, ... in turn on one input)."""

    def __init__(self, joint: JointProjection, index: int) -> None:
        super().__init__()
        # A plain attribute, not a submodule: the joint is registered once, on its first part.
        object.__setattr__(self, "joint", joint)
        if index == 0:
            self.shared = joint
        self.index = index
        self.out_features = joint.widths[index]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.joint.take(self.index, hidden)

    def extra_repr(self) -> str:
        return f"part {self.index} of a joint int8 projection, {self.out_features} outputs"


def _join(owner: nn.Module, names: Sequence[str]) -> bool:
    parts = [getattr(owner, name, None) for name in names]
    if not all(isinstance(part, Int8Linear) and part.bias is None for part in parts):
        return False
    if len({part.in_features for part in parts}) != 1:
        return False
    joint = JointProjection(parts)
    for index, name in enumerate(names):
        setattr(owner, name, joint.part(index))
    return True


def join_projections(model: nn.Module) -> int:
    """Join q/k/v and gate/up of every int8 decoder layer that has them; how many were joined."""
    joined = 0
    for module in list(model.modules()):
        if _join(module, ("q_proj", "k_proj", "v_proj")):
            joined += 1
        if _join(module, ("gate_proj", "up_proj")):
            joined += 1
    return joined


def joint_of(module: nn.Module) -> JointProjection | None:
    return module.joint if isinstance(module, ProjectionPart) else None
