"""Linear layers that read the same input, run as one int8 matmul.

In decoding every int8 matmul call has a fixed cost of ~0.2 ms on this CPU (activation packing,
waking the second thread) on top of reading its weights, and a Qwen3 decoder layer makes seven:
q, k and v read the same normed input, as do gate and up. Joining them makes it four calls a layer
(~15 ms a token less over 28 layers) with bit-identical results, since weights keep their
per-output-channel scales and each token's activations their own scale. The parts are joined
while quantizing, from their float weights, so no int8 weight is ever held twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from core.quantize import Int8Linear, RowSource


def _version(tensor: torch.Tensor) -> int:
    # Counts in-place changes; tensors made under inference_mode keep no count (-1), and there
    # identity alone decides, which is safe because transformers never changes a layer's
    # normed input in place between its projections.
    return -1 if tensor.is_inference() else tensor._version


class JointProjection(nn.Module):
    """q/k/v (or gate/up) as one int8 matmul whose output is split back into the parts."""

    def __init__(self, weights: Sequence[RowSource]) -> None:
        """Quantized from the parts' float weights (output channels × inputs, no bias)."""
        super().__init__()
        self.widths = [weight.shape[0] for weight in weights]
        self.linear = Int8Linear(torch.cat([weight[:] for weight in weights]), None)
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


JOINABLE = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def _joinable_groups(owner: nn.Module) -> list[tuple[str, ...]]:
    """The groups of ``owner``'s float Linear children that read one input and can be joined."""
    groups = []
    for names in JOINABLE:
        parts = [getattr(owner, name, None) for name in names]
        if all(isinstance(p, nn.Linear) and p.bias is None for p in parts) and (
            len({p.in_features for p in parts}) == 1
        ):
            groups.append(names)
    return groups


def join_linears(owner: nn.Module, weight_of: Callable[[str, nn.Linear], RowSource]) -> int:
    """Replace each joinable group of ``owner``'s float Linears with one joint int8 matmul.

    ``weight_of(name, linear)`` gives a part's float weight (from the module, or from disk when
    the module's parameters are still on the meta device). Returns how many groups it joined.
    """
    groups = _joinable_groups(owner)
    for names in groups:
        joint = JointProjection([weight_of(name, getattr(owner, name)) for name in names])
        for index, name in enumerate(names):
            setattr(owner, name, joint.part(index))
    return len(groups)


def joint_of(module: nn.Module) -> JointProjection | None:
    return module.joint if isinstance(module, ProjectionPart) else None
